#!/usr/bin/env python3
"""Replication benchmark: lag, throughput while replicating, catch-up speed.

    cargo build --release -p meridian && python3 bench/replication.py [--out bench/RESULTS.md]

1. Lag. Three nodes (eu, us, ap) on this machine, `--fsync always`, with and without the
   simulated WAN delay of the demo (one way: eu-us 40 ms, us-ap 75 ms, eu-ap 110 ms). Writes go
   to eu at 1k/s and 10k/s (a paced redis-py pipeline every 10 ms; 10k/s both for
   --seconds and for --long-seconds) and at the maximum rate (redis-benchmark -P 16). Lag is what each receiving node records in the histogram
   `meridian_replication_lag_seconds`: from eu's acknowledgment of the write (after its
   fsync; eu ships each entry with when it acknowledged it) to its commit at the receiver,
   where reads see it. Quantiles are read from the histogram's buckets (so they are bucket
   upper bounds).
   WAIT: a SET at eu, then `WAIT 2` and `WAIT 3` with the WAN delay, 30 times each.
2. Throughput. redis-benchmark SET (50 clients, random keys, 100-byte values) against one node
   alone, then against eu of a three-node cluster, then again with the two peers at nice 19;
   the ratios are cluster / alone.
3. Catch-up. Two nodes; us is stopped; 1M SETs go to eu (redis-benchmark -P 16); us starts
   again and the time until eu reports it caught up (lag_ops 0 in INFO replication) gives
   the catch-up rate. Three runs (--catch-up-runs): the same binary's rate moves by ±15%
   between runs on this host.

Everything shares the machine's 2 cores: the receivers, the load generator and the sender.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
REGIONS = ["eu", "us", "ap"]
WAN = "eu-us=40,us-ap=75,eu-ap=110"
ONE_WAY = {"us": 40, "ap": 110}
BEGIN, END = "<!-- replication: begin -->", "<!-- replication: end -->"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, binary, workdir, region, join=None, wan=False, fsync="always"):
        self.region = region
        self.port, self.http, self.peer = free_port(), free_port(), free_port()
        self.args = [str(binary), "server", "--node-id", f"{region}-1", "--region", region,
                     "--data-dir", str(workdir / region), "--fsync", fsync,
                     "--resp-addr", f"127.0.0.1:{self.port}", "--http-addr", f"127.0.0.1:{self.http}",
                     "--peer-addr", f"127.0.0.1:{self.peer}"]
        if join:
            self.args += ["--join", join]
        if wan:
            self.args += ["--wan-delay", WAN]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if redis.Redis(port=self.port).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        sys.exit(f"{self.region} did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def client(self):
        return redis.Redis(port=self.port)

    def cpu_seconds(self):
        """User + system CPU time the process has used."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def lower_priority(self):
        """Every thread of the process at nice 19: it runs on what CPU the others leave."""
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            subprocess.run(["renice", "-n", "19", "-p", task.name], check=True, capture_output=True)

    def pin(self, cpu):
        """Every thread of the process (and those it starts later) on CPU `cpu` only."""
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(self.proc.pid)], check=True,
                       capture_output=True)

    def peers_up(self):
        return int(self.client().info("replication")["connected_peers"])

    def lag_buckets(self):
        """Cumulative counts per upper bound (seconds) of the lag histogram."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5).read().decode()
        out = {}
        for m in re.finditer(r'meridian_replication_lag_seconds_bucket\{le="([^"]+)"\} (\d+)', text):
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            out[le] = int(m.group(2))
        return out


def cluster(binary, workdir, wan, count=3):
    nodes = [Node(binary, workdir, REGIONS[0], wan=wan).start()]
    for region in REGIONS[1:count]:
        nodes.append(Node(binary, workdir, region, join=f"127.0.0.1:{nodes[0].peer}", wan=wan).start())
    deadline = time.time() + 30
    while any(n.peers_up() != count - 1 for n in nodes):
        if time.time() > deadline:
            sys.exit("cluster did not form")
        time.sleep(0.1)
    return nodes


def quantiles(buckets):
    total = buckets.get(float("inf"), 0)
    if total == 0:
        return None
    bounds = sorted(buckets)

    def q(p):
        for b in bounds:
            if buckets[b] >= p * total:
                return b
        return bounds[-1]

    worst = next(b for b in bounds if buckets[b] == total)
    return total, q(0.5), q(0.99), worst


def paced(node, rate, seconds):
    """SETs to `node` at `rate` per second, sent as one pipeline every 10 ms. Answers the rate
    achieved."""
    c = node.client()
    per_tick = max(1, rate // 100)
    sent, i = 0, 0
    start = time.monotonic()
    next_tick = start
    while time.monotonic() - start < seconds:
        pipe = c.pipeline(transaction=False)
        for _ in range(per_tick):
            pipe.set(f"lag:{i % 100000}", "x" * 100)
            i += 1
        pipe.execute()
        sent += per_tick
        next_tick += 0.01
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return sent / (time.monotonic() - start)


def benchmark(node, requests, pipeline, clients=50, keyspace=100000, cpu=None):
    pinned = [] if cpu is None else ["taskset", "-c", str(cpu)]
    out = subprocess.run([*pinned, "redis-benchmark", "-p", str(node.port), "-t", "set", "-n", str(requests),
                          "-c", str(clients), "-P", str(pipeline), "-r", str(keyspace), "-d", "100", "--csv"],
                         capture_output=True, text=True, check=True).stdout
    row = [line for line in out.splitlines() if line.startswith('"SET"')][0]
    return float(row.split(",")[1].strip('"'))


def ms(seconds):
    return "inf" if seconds == float("inf") else f"{seconds * 1000:.0f}"


def settle(nodes, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = nodes[0].client().info("replication")
        peers = [v for k, v in info.items() if k.startswith("peer") and isinstance(v, dict)]
        if peers and all(p["lag_ops"] == 0 for p in peers):
            return
        time.sleep(0.1)
    sys.exit("replicas never caught up")


def lag_rows(binary, seconds, long_seconds, requests):
    """Rows of (wan, rate, seconds, achieved, region, one-way ms, quantiles). The 10k/s rate
    runs twice: `seconds` long and `long_seconds` long, since a short run may see none of the
    storage engine's periodic flushes and compactions (whose disk writes stall fsyncs)."""
    rows = []
    for wan in (False, True):
        for rate, secs in ((1000, seconds), (10000, seconds), (10000, long_seconds), ("max", None)):
            with tempfile.TemporaryDirectory() as tmp:
                nodes = cluster(binary, Path(tmp), wan)
                try:
                    if rate == "max":
                        started = time.monotonic()
                        achieved = benchmark(nodes[0], requests, 16)
                        secs = time.monotonic() - started
                    else:
                        achieved = paced(nodes[0], rate, secs)
                    settle(nodes)
                    for receiver in nodes[1:]:
                        q = quantiles(receiver.lag_buckets())
                        one_way = ONE_WAY[receiver.region] if wan else 0
                        rows.append((wan, rate, secs, achieved, receiver.region, one_way, q))
                        print(rows[-1], flush=True)
                finally:
                    for n in nodes:
                        n.stop()
    return rows


def wait_rows(binary, rounds=30):
    """WAIT latency with the WAN delay: a SET at eu, then WAIT for 2 regions (eu and us, 80 ms
    round trip) and for 3 (ap too, 220 ms). Rows of (regions, round trip ms, p50 ms, max ms)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nodes = cluster(binary, Path(tmp), True)
        try:
            c = nodes[0].client()
            for regions, rtt in ((2, 2 * ONE_WAY["us"]), (3, 2 * ONE_WAY["ap"])):
                took = []
                for i in range(rounds):
                    c.set(f"wait:{i}", "x")
                    started = time.monotonic()
                    reached = c.execute_command("WAIT", regions, 5000)
                    took.append((time.monotonic() - started) * 1000)
                    assert reached >= regions, f"WAIT {regions} reached {reached}"
                    time.sleep(0.05)
                took.sort()
                rows.append((regions, rtt, took[len(took) // 2], took[-1]))
                print(rows[-1], flush=True)
        finally:
            for n in nodes:
                n.stop()
    return rows


def measured(node, requests, pipeline, client_cpu=None):
    """Throughput, and writes per CPU second the node itself spent on them."""
    cpu = node.cpu_seconds()
    rate = benchmark(node, requests, pipeline, cpu=client_cpu)
    return rate, requests / (node.cpu_seconds() - cpu)


def throughput_rows(binary, requests):
    """Per pipeline depth: alone, replicating, replicating with the peers at nice 19, and
    the node on a core of its own alone and replicating (the client and the peers, at nice 19,
    on the other core)."""
    rows = []
    for pipeline in (1, 16):
        solo = []
        for own_core in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                alone = Node(Path(binary), Path(tmp), "eu").start()
                try:
                    if own_core:
                        alone.pin(0)
                    solo.append(measured(alone, requests, pipeline, 1 if own_core else None))
                finally:
                    alone.stop()
        replicated = []
        for lowered, own_core in ((False, False), (True, False), (True, True)):
            with tempfile.TemporaryDirectory() as tmp:
                nodes = cluster(binary, Path(tmp), False)
                try:
                    if own_core:
                        nodes[0].pin(0)
                    for peer in nodes[1:]:
                        if lowered:
                            peer.lower_priority()
                        if own_core:
                            peer.pin(1)
                    replicated.append(measured(nodes[0], requests, pipeline, 1 if own_core else None))
                    settle(nodes)
                finally:
                    for n in nodes:
                        n.stop()
        rows.append((pipeline, *solo, *replicated))
        print(rows[-1], flush=True)
    return rows


def catch_up(binary, writes):
    with tempfile.TemporaryDirectory() as tmp:
        nodes = cluster(binary, Path(tmp), False, count=2)
        eu, us = nodes
        try:
            us.stop()
            benchmark(eu, writes, 16, keyspace=writes)
            entries = int(eu.client().info("replication")["log_seq"])
            us.start()
            started = time.monotonic()
            settle(nodes, timeout=600)
            took = time.monotonic() - started
            assert us.client().dbsize() == eu.client().dbsize()
            return writes, entries, took
        finally:
            for n in nodes:
                n.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--long-seconds", type=float, default=60)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--catch-up", type=int, default=1000000)
    ap.add_argument("--catch-up-runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "meridian")
    ap.add_argument("--only-catch-up", action="store_true", help="measure catch-up alone and print it")
    args = ap.parse_args()
    binary = args.binary
    if not binary.exists() or shutil.which("redis-benchmark") is None:
        sys.exit("needs target/release/meridian (cargo build --release -p meridian) and redis-benchmark")
    if args.only_catch_up:
        writes, entries, took = catch_up(binary, args.catch_up)
        print(f"{writes} writes ({entries} entries) caught up in {took:.1f} s: {writes / took:.0f}/s")
        return
    lags = lag_rows(binary, args.seconds, args.long_seconds, args.requests)
    waits = wait_rows(binary)
    throughput = throughput_rows(binary, args.requests)
    catch_ups = [catch_up(binary, args.catch_up) for _ in range(args.catch_up_runs)]

    lines = [BEGIN, "## Replication", "",
             "Reproduce: `cargo build --release -p meridian && python3 bench/replication.py` "
             f"(here: {time.strftime('%Y-%m-%d')}, paced rows {args.seconds:.0f} s and, at 10k/s, "
             f"{args.long_seconds:.0f} s; {args.requests} requests per redis-benchmark row). Three "
             "processes and the load generator share this machine's 2 cores and one disk; "
             "`--fsync always` everywhere. Lag runs from eu's acknowledgment of a write (after "
             "its fsync) to the write's commit at the receiver, where reads see it.", "",
             "### Lag from eu to each region (p50 / p99 / max are histogram bucket bounds, ms)", "",
             "| WAN delay | target rate | seconds | achieved/s | to | one-way ms | entries | p50 | p99 | max | p99 <= one-way + 10 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for wan, rate, secs, achieved, region, one_way, q in lags:
        head = f"| {'yes' if wan else 'no'} | {rate} | {secs:.0f} | {achieved:.0f} | {region} | {one_way} |"
        if q is None:
            lines.append(f"{head} 0 | - | - | - | - |")
            continue
        n, p50, p99, worst = q
        ok = "yes" if p99 * 1000 <= one_way + 10 else "no"
        lines.append(f"{head} {n} | {ms(p50)} | {ms(p99)} | {ms(worst)} | {ok} |")
    lines += ["", "### WAIT with the WAN delay (a SET at eu, then WAIT; 30 rounds each)", "",
              "| regions | round trip to the farthest, ms | p50 ms | max ms |", "|---|---|---|---|"]
    for regions, rtt, p50, worst in waits:
        lines.append(f"| {regions} | {rtt} | {p50:.0f} | {worst:.0f} |")
    lines += ["", "### One node's SET throughput: replicating to two peers vs alone", "",
              "The peers run on the same 2 cores and the same disk and each apply every write, so "
              "wall-clock throughput also measures the machine being shared three ways. Two "
              "views of what replication costs the node itself: writes per CPU second of the "
              "origin process, and throughput with the peers at nice 19 (they run on the CPU the "
              "origin leaves, as if they had their own; the disk stays shared).", "",
              "| pipeline | alone/s | replicating/s | ratio (target >= 0.8) | peers at nice 19/s | ratio | "
              "alone writes/CPU-s | replicating writes/CPU-s | ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for pipeline, (solo, solo_cpu), _, (replicated, replicated_cpu), (lowered, _), _ in throughput:
        lines.append(f"| {pipeline} | {solo:.0f} | {replicated:.0f} | {replicated / solo:.2f}x | "
                     f"{lowered:.0f} | {lowered / solo:.2f}x | "
                     f"{solo_cpu:.0f} | {replicated_cpu:.0f} | {replicated_cpu / solo_cpu:.2f}x |")
    lines += ["", "A third view, closest to the peers having machines of their own: the node pinned "
              "to one core in both runs (`taskset`), the client on the other core, and, when "
              "replicating, the two peers on that other core too at nice 19 (the client goes "
              "first). The disk stays shared.", "",
              "| pipeline | alone, own core/s | replicating, own core/s | ratio (target >= 0.8) |",
              "|---|---|---|---|"]
    for pipeline, _, (solo, _), _, _, (pinned, _) in throughput:
        lines.append(f"| {pipeline} | {solo:.0f} | {pinned:.0f} | {pinned / solo:.2f}x |")
    rates = sorted(writes / took for writes, _, took in catch_ups)
    lines += ["", "### Catch-up after missing writes", "",
              f"us was down while eu took {args.catch_up} SETs, then restarted and caught up; "
              f"{len(catch_ups)} runs (target >= 100k writes/s):", "",
              "| run | log entries (one per engine round) | caught up in s | writes/s |", "|---|---|---|---|"]
    for i, (writes, entries, took) in enumerate(catch_ups, 1):
        lines.append(f"| {i} | {entries} | {took:.1f} | {writes / took:.0f} |")
    lines += ["", f"Median **{rates[len(rates) // 2]:.0f} writes/s**.", "", END]
    block = "\n".join(lines)
    text = args.out.read_text() if args.out.exists() else ""
    if BEGIN in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    args.out.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
