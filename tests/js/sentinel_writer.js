// Writes through ioredis's sentinel support, unchanged: the client asks the sentinels for the
// master of a region, writes to it every 50 ms, and prints one line per write:
//   ok <i> <epoch ms> <port written to>   or   err <i> <epoch ms> <message>
// Run by tests/test_discovery.py: node sentinel_writer.js <host:port,...> <region> <seconds> [password]
const Redis = require("ioredis");

const [sentinelList, name, seconds, password] = process.argv.slice(2);
const sentinels = sentinelList.split(",").map((s) => {
  const [host, port] = s.split(":");
  return { host, port: Number(port) };
});
const redis = new Redis({
  sentinels,
  name,
  password,
  sentinelPassword: password,
  // Listen to +switch-master: a node cut off (not closed) is left at once.
  failoverDetector: true,
  sentinelRetryStrategy: () => 100,
  retryStrategy: () => 100,
  maxRetriesPerRequest: null,
  enableOfflineQueue: true,
});
redis.on("error", () => {});

const end = Date.now() + Number(seconds) * 1000;
let i = 0;
async function run() {
  while (Date.now() < end) {
    i += 1;
    try {
      await redis.set(`ioredis:${name}:${i}`, String(i));
      const port = redis.stream ? redis.stream.remotePort : 0;
      console.log(`ok ${i} ${Date.now()} ${port}`);
    } catch (e) {
      console.log(`err ${i} ${Date.now()} ${String(e.message).replace(/\s+/g, " ")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  redis.disconnect();
}
run();
