#!/usr/bin/env python3
"""Failover benchmark: how long a sentinel-aware client is without an acknowledged write when
its region's node fails, beside Redis Sentinel's default.

    cargo build --release -p meridian && sudo python3 bench/failover.py [--rounds 20] [--out bench/RESULTS.md]

Three hosts (network namespaces on one bridge, tests/netns.py), one Meridian node each: eu, us
and ap, under the demo's WAN delay (one way: eu-us 40 ms, us-ap 75 ms, eu-ap 110 ms), each with
its sentinel listener. A redis-py client in the root namespace, unchanged (`Sentinel(...)
.master_for("eu", socket_timeout=1)`), writes every 10 ms. Each round fails eu one of two ways,
alternately:

- kill: SIGKILL (the kernel closes eu's sockets: peers see the link drop at once);
- cut off: every packet in and out of eu's host dropped (iptables), so nothing closes: peers
  notice the silence (2 s without a pong), and the client's pending command times out.

The figure is the time from the failure to the client's next acknowledged write, at us (eu's
nearest region). Then eu comes back (restarted or healed); the time until every sentinel names
it again (after it caught up) is reported too.

Redis Sentinel's default (`down-after-milliseconds 30000`) declares a master down after 30 s
of silence, then elects a leader and promotes a replica: its clients wait at least 30 s. Run
beside it with `--sentinel-rounds N` (a redis-server master, a replica and three redis-sentinel
processes on loopback with the default settings; each round kills the master).
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from redis.sentinel import Sentinel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from netns import Hosts, why_not  # noqa: E402

REGIONS = ["eu", "us", "ap"]
WAN = "eu-us=40,us-ap=75,eu-ap=110"
SENTINEL_PORT = 26379
BEGIN, END = "<!-- failover: begin -->", "<!-- failover: end -->"


class Node:
    def __init__(self, binary, hosts, i, workdir):
        self.region, self.ns, self.ip = REGIONS[i], hosts.names[i], hosts.address(i)
        self.port = 7379
        self.args = ["ip", "netns", "exec", self.ns, str(binary), "server",
                     "--node-id", f"{self.region}-1", "--region", self.region,
                     "--data-dir", str(workdir / self.region),
                     "--resp-addr", f"{self.ip}:7379", "--http-addr", f"{self.ip}:7380",
                     "--peer-addr", f"{self.ip}:7381", "--sentinel-addr", f"{self.ip}:{SENTINEL_PORT}",
                     "--insecure-peers", "--cluster-secret", "bench", "--protected-mode", "no",
                     "--wan-delay", WAN]
        if i > 0:
            self.args += ["--join", f"{hosts.address(0)}:7381"]
        self.log = open(workdir / f"{self.region}.log", "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def cut(self, off):
        for chain, way in (("INPUT", "-i"), ("OUTPUT", "-o")):
            rule = [chain, "!", way, "lo", "-j", "DROP"]
            subprocess.run(["ip", "netns", "exec", self.ns, "iptables", "-A" if off else "-D", *rule], check=True)


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic()
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def named(nodes, region):
    """The port every live sentinel answers for `region`, when they agree."""
    got = set()
    for n in nodes:
        s = redis.Redis(host=n.ip, port=SENTINEL_PORT, socket_timeout=0.5)
        addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", region)
        got.add(None if addr is None else addr[0].decode())
    return got.pop() if len(got) == 1 else None


def write_until_acknowledged(client, key, deadline):
    while time.monotonic() < deadline:
        try:
            client.set(key, "x")
            return time.monotonic()
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.01)
    raise SystemExit("no write acknowledged within 30 s")


def meridian_rounds(binary, rounds):
    workdir = Path(tempfile.mkdtemp(prefix="meridian-failover-"))
    hosts = Hosts(3)
    nodes = [Node(binary, hosts, i, workdir) for i in range(3)]
    results = {"kill": [], "cut off": []}
    back = []
    try:
        for n in nodes:
            n.start()
            time.sleep(0.3)
        eu, us = nodes[0], nodes[1]
        wait_for("eu named", lambda: named(nodes, "eu") == eu.ip)
        time.sleep(2)  # round trips measured: the nearest region is known
        for r in range(rounds):
            mode = "kill" if r % 2 == 0 else "cut off"
            sentinels = [(n.ip, SENTINEL_PORT) for n in nodes]
            client = Sentinel(sentinels, socket_timeout=0.5).master_for(
                "eu", socket_timeout=1.0, socket_connect_timeout=0.5)
            for i in range(20):
                client.set(f"warm-{r}-{i}", "x")
                time.sleep(0.01)
            assert client.info("replication")["region"] == "eu"
            failed = time.monotonic()
            eu.kill() if mode == "kill" else eu.cut(True)
            acked = write_until_acknowledged(client, f"after-{r}", failed + 30)
            region = client.info("replication")["region"]
            results[mode].append(acked - failed)
            print(f"round {r + 1:2}: {mode:8} next write acknowledged at {region} after {acked - failed:.3f} s",
                  flush=True)
            for i in range(50):
                client.set(f"away-{r}-{i}", "x")
            returned = time.monotonic()
            eu.start() if mode == "kill" else eu.cut(False)
            again = wait_for("eu named again", lambda: named(nodes, "eu") == eu.ip)
            back.append(again - returned)
            client.connection_pool.disconnect()
    finally:
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()
        hosts.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results, back


def sentinel_rounds(rounds):
    """Redis Sentinel with its defaults: a master, a replica, three sentinels (quorum 2)."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-failover-"))
    procs, times = [], []
    ports = {"a": 16379, "b": 16380}
    sentinel_ports = [26380, 26381, 26382]

    def server(name, extra=()):
        p = subprocess.Popen(["redis-server", "--port", str(ports[name]), "--dir", str(workdir),
                              "--dbfilename", f"{name}.rdb", "--save", "", *extra],
                             stdout=subprocess.DEVNULL)
        procs.append(p)
        return p

    try:
        running = {"a": server("a"), "b": server("b", ["--replicaof", "127.0.0.1", str(ports["a"])])}
        for sp in sentinel_ports:
            conf = workdir / f"sentinel-{sp}.conf"
            conf.write_text(f"port {sp}\nsentinel monitor m 127.0.0.1 {ports['a']} 2\n")
            procs.append(subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL))
        def ready():
            # Every sentinel knows the others and a replica it could promote (they learn
            # replicas from the master's INFO, every 10 s).
            for sp in sentinel_ports:
                s = redis.Redis(port=sp, decode_responses=True)
                master = s.sentinel_master("m")
                replicas = s.sentinel_slaves("m")
                if (not master["is_master"] or master["is_sdown"] or master["num-other-sentinels"] != 2
                        or not any(r["flags"] == "slave" and r.get("master-link-status") == "ok" for r in replicas)):
                    return False
            return True

        for r in range(rounds):
            wait_for("the sentinels to know a replica", ready, timeout=60)
            client = Sentinel([("127.0.0.1", sp) for sp in sentinel_ports], socket_timeout=0.5).master_for(
                "m", socket_timeout=1.0, socket_connect_timeout=0.5)
            client.set("warm", "x")
            master = next(k for k, v in ports.items() if v == client.connection_pool.get_master_address()[1])
            failed = time.monotonic()
            running[master].kill()
            running[master].wait()
            acked = write_until_acknowledged(client, "after", failed + 120)
            times.append(acked - failed)
            print(f"sentinel round {r + 1}: next write acknowledged after {acked - failed:.3f} s", flush=True)
            # The old master comes back as a replica of the new one.
            other = "b" if master == "a" else "a"
            running[master] = server(master, ["--replicaof", "127.0.0.1", str(ports[other])])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sentinel-rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if reason := why_not():
        raise SystemExit(reason)
    binary = ROOT / "target" / "release" / "meridian"
    results, back = meridian_rounds(binary, args.rounds)
    sentinel = sentinel_rounds(args.sentinel_rounds) if args.sentinel_rounds else []

    def row(name, xs):
        return f"| {name} | {len(xs)} | {statistics.median(xs):.2f} | {max(xs):.2f} |"

    lines = [BEGIN, "",
             f"Run on {time.strftime('%Y-%m-%d')}: `sudo python3 bench/failover.py --rounds {args.rounds} "
             f"--sentinel-rounds {args.sentinel_rounds}` (after `cargo build --release -p meridian`).",
             "", "| failure of the client's node | failovers | p50 s | max s |", "|---|---|---|---|",
             row("Meridian, node killed (SIGKILL)", results["kill"]),
             row("Meridian, node cut off (iptables, nothing closes)", results["cut off"]),
             row("Meridian, node named again after its return (caught up)", back)]
    if sentinel:
        lines.append(row("Redis Sentinel, defaults (down-after 30 s), master killed", sentinel))
    lines += ["", END]
    text = "\n".join(lines)
    print(text)
    if args.out:
        old = args.out.read_text() if args.out.exists() else ""
        if BEGIN in old and END in old:
            old = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
        else:
            old += "\n## Failover (issue 15)\n\n" + text + "\n"
        args.out.write_text(old)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
