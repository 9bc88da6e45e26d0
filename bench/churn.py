#!/usr/bin/env python3
"""Churn: a steady load of distinct keys with a TTL, redis-server beside a 3-region cluster.

    cargo build --release -p meridian && python3 bench/churn.py [--rate 5000] [--ttl 5] \
        [--minutes 10] [--every 60] [--out FILE]

Writes RATE distinct keys per second (`SET churn:N <64 B> EX TTL`, pipelined in batches every
100 ms; for the cluster the batches go to the three regions in turn) for MINUTES, and every
EVERY seconds samples, per server: keys (DBSIZE), bytes on disk (the data directory; for
redis-server its AOF directory, appendfsync everysec) and, for Meridian, the tombstones held.
A state that is bounded by what is live levels off after the first TTL; one that keeps what
was ever written grows with every sample. redis-server runs first, then the cluster (each
alone on the machine).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent

from run import free_port, wait_port  # noqa: E402 (bench/run.py, beside this script)



def dir_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def run_load(targets, rate, ttl, seconds, every, sample):
    """targets: redis clients written in turn. `sample()` returns one row of figures."""
    per_batch = max(1, rate // 10)
    value = "v" * 64
    n = 0
    rows = []
    start = time.monotonic()
    next_sample = start + every
    batch_no = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        pipe = targets[batch_no % len(targets)].pipeline(transaction=False)
        for _ in range(per_batch):
            pipe.set(f"churn:{n}", value, ex=ttl)
            n += 1
        pipe.execute()
        batch_no += 1
        if time.monotonic() >= next_sample:
            rows.append((round(time.monotonic() - start), n, *sample()))
            next_sample += every
        # Paced: batch k is due at start + k * 100 ms.
        delay = start + batch_no * 0.1 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    rows.append((round(time.monotonic() - start), n, *sample()))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--ttl", type=int, default=5)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--every", type=float, default=60)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "meridian"))
    ap.add_argument("--out")
    args = ap.parse_args()
    seconds = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="meridian-churn-"))
    procs = []
    try:
        port = free_port()
        (work / "redis").mkdir()
        rp = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "yes",
                               "--appendfsync", "everysec", "--dir", str(work / "redis"), "--daemonize", "no"],
                              stdout=subprocess.DEVNULL)
        procs.append(rp)
        wait_port(port, rp)
        rc = redis.Redis(port=port)
        redis_rows = run_load([rc], args.rate, args.ttl, seconds, args.every,
                              lambda: (rc.dbsize(), dir_bytes(work / "redis")))
        rp.terminate()
        rp.wait()

        nodes = []
        for i, region in enumerate(["eu", "us", "ap"]):
            port, http, peer = free_port(), free_port(), free_port()
            cmd = [args.binary, "server", "--node-id", f"{region}-1", "--region", region,
                   "--data-dir", str(work / region), "--resp-addr", f"127.0.0.1:{port}",
                   "--http-addr", f"127.0.0.1:{http}", "--peer-addr", f"127.0.0.1:{peer}", "--fsync", "batch"]
            if nodes:
                cmd += ["--join", f"127.0.0.1:{nodes[0][2]}"]
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(port, p)
            nodes.append((region, redis.Redis(port=port), peer))
        deadline = time.time() + 30
        while not all(int(c.info("replication")["connected_peers"]) == 2 for _, c, _ in nodes):
            if time.time() > deadline:
                sys.exit("the cluster did not form")
            time.sleep(0.2)

        def sample():
            row = []
            for region, c, _ in nodes:
                row += [c.dbsize(), c.info("stats")["tombstones"], dir_bytes(work / region)]
            return tuple(row)

        cluster_rows = run_load([c for _, c, _ in nodes], args.rate, args.ttl, seconds, args.every, sample)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)

    mib = lambda b: f"{b / 2**20:.0f}"
    lines = [f"{args.rate} distinct keys/s with `SET churn:N <64 B> EX {args.ttl}` for {args.minutes:g} min "
             f"(live set about {args.rate * args.ttl} keys):", "",
             "| s | written | redis keys | redis AOF MiB | eu keys | eu tombstones | eu MiB "
             "| us keys | us tombstones | us MiB | ap keys | ap tombstones | ap MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (t, written, rkeys, rbytes), (_, _, *m) in zip(redis_rows, cluster_rows):
        cells = [str(t), str(written), str(rkeys), mib(rbytes)]
        for i in range(3):
            keys, tombs, size = m[3 * i: 3 * i + 3]
            cells += [str(keys), str(tombs), mib(size)]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
