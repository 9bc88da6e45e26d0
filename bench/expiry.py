#!/usr/bin/env python3
"""Expiry bursts and idle CPU: Meridian (one node, three regions) beside redis-server, one run.

    cargo build --release -p meridian && python3 bench/expiry.py [--keys 200000] [--out FILE]

For each server: redis-benchmark writes KEYS distinct keys with `SET key:N <70 bytes> EX 1`
(20 clients, pipeline 16), then nothing. Reports how long after the last write every node's
DBSIZE reaches 0 (the keys' deadline is one second after their write, so "after the deadline"
is that minus one second), the CPU the server burned doing it, then its CPU while idle for
10 s, starting 5 s after Meridian holds no tombstone any more (from /proc/PID/stat), and for
Meridian the data directory's size. The
cluster's burst goes to one node (eu-1); all three are watched.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from run import free_port, wait_port  # noqa: E402 (bench/run.py, beside this script)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def info(port, field):
    for line in cli(port, "INFO", "stats").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def dir_mib(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def start_meridian(binary, workdir, name, region, join=None):
    port, http, peer = free_port(), free_port(), free_port()
    args = [binary, "server", "--node-id", name, "--region", region, "--data-dir", str(workdir / name),
            "--resp-addr", f"127.0.0.1:{port}", "--http-addr", f"127.0.0.1:{http}",
            "--peer-addr", f"127.0.0.1:{peer}", "--fsync", "batch"]
    if join:
        args += ["--join", join]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port, peer


def burst(servers, keys, limit_s):
    """servers: [(name, proc, port, data_dir or None)]; the first takes the writes."""
    before = {name: cpu_seconds(p.pid) for name, p, _, _ in servers}
    subprocess.run(["redis-benchmark", "-p", str(servers[0][2]), "-n", str(keys), "-r", "100000000", "-c", "20",
                    "-P", "16", "-q", "SET", "key:__rand_int__", "x" * 70, "EX", "1"],
                   capture_output=True, check=True)
    written = time.monotonic()
    gone = {}
    peak = {}
    while len(gone) < len(servers) and time.monotonic() - written < limit_s:
        for name, _, port, _ in servers:
            if name not in gone:
                n = int(cli(port, "DBSIZE"))
                peak[name] = max(peak.get(name, 0), n)
                if n == 0:
                    gone[name] = time.monotonic() - written
        time.sleep(0.05)
    spent = {name: cpu_seconds(p.pid) - before[name] for name, p, _, _ in servers}
    # Meridian then collects the tombstones (in a cluster) and compacts: idle is measured
    # once that is done.
    settled = {}
    while len(settled) < len(servers) and time.monotonic() - written < limit_s:
        for name, _, port, data in servers:
            if name not in settled and (data is None or int(info(port, "tombstones") or 0) == 0):
                settled[name] = time.monotonic() - written
        time.sleep(0.05)
    time.sleep(5)
    idle_from = {name: cpu_seconds(p.pid) for name, p, _, _ in servers}
    time.sleep(10)
    idle = {name: (cpu_seconds(p.pid) - idle_from[name]) / 10 * 100 for name, p, _, _ in servers}
    rows = []
    for name, _, _, data in servers:
        rows.append((name, peak.get(name, 0), gone.get(name), settled.get(name), spent[name], idle[name],
                     dir_mib(data) if data else None))
    return rows


def full_scan_ms(port):
    """Median of 5 full `SCAN` iterations (COUNT 1000), and the slowest of 20 `SCAN 0 COUNT 10`."""
    import redis

    r = redis.Redis(port=port)
    fulls = []
    for _ in range(5):
        started = time.perf_counter()
        cursor = None
        while cursor != 0:
            cursor, _ = r.scan(cursor or 0, count=1000)
        fulls.append((time.perf_counter() - started) * 1000)
    firsts = []
    for _ in range(20):
        started = time.perf_counter()
        r.scan(0, count=10)
        firsts.append((time.perf_counter() - started) * 1000)
    return sorted(fulls)[2], max(firsts)


def scan_after_churn(binary, work, keys):
    """SCAN on a node where `keys` keys expired, against the same on an empty node."""
    empty, port, _ = start_meridian(binary, work, "empty", "local")
    empty_ms = full_scan_ms(port)
    empty.terminate()
    proc, port, _ = start_meridian(binary, work, "churned", "local")
    subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(keys), "-r", "100000000", "-c", "20",
                    "-P", "16", "-q", "SET", "key:__rand_int__", "x" * 70, "EX", "2"],
                   capture_output=True, check=True)
    deadline = time.monotonic() + 120
    while int(cli(port, "DBSIZE")) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    churned_ms = full_scan_ms(port)
    proc.terminate()
    return empty_ms, churned_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--limit", type=float, default=60, help="give up waiting for DBSIZE 0 after this many s")
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "meridian"))
    ap.add_argument("--scan-keys", type=int, default=1_000_000,
                    help="keys that expire before SCAN is timed (0: skip)")
    ap.add_argument("--out")
    args = ap.parse_args()
    scan = None
    work = Path(tempfile.mkdtemp(prefix="meridian-expiry-"))
    procs = []
    rows = []
    try:
        port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                       "--daemonize", "no"], stdout=subprocess.DEVNULL)
        procs.append(redis_proc)
        wait_port(port, redis_proc)
        rows += [("redis-server", *r[1:]) for r in burst([("redis", redis_proc, port, None)], args.keys, args.limit)]
        redis_proc.terminate()

        proc, port, _ = start_meridian(args.binary, work, "solo", "local")
        procs.append(proc)
        rows += [(f"meridian, one node", *r[1:]) for r in
                 burst([("solo", proc, port, work / "solo")], args.keys, args.limit)]
        proc.terminate()

        cluster = []
        for region in ["eu", "us", "ap"]:
            join = f"127.0.0.1:{cluster[0][3]}" if cluster else None
            p, port, peer = start_meridian(args.binary, work, f"{region}-1", region, join)
            procs.append(p)
            cluster.append((f"{region}-1", p, port, peer))
        deadline = time.time() + 30
        while time.time() < deadline:
            if all("connected_peers:2" in cli(port, "INFO", "replication") for _, _, port, _ in cluster):
                break
            time.sleep(0.2)
        servers = [(name, p, port, work / name) for name, p, port, _ in cluster]
        rows += [(f"meridian, 3 regions: {r[0]}", *r[1:]) for r in burst(servers, args.keys, args.limit)]
        for _, p, _, _ in cluster:
            p.terminate()
        if args.scan_keys:
            scan = scan_after_churn(args.binary, work, args.scan_keys)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)

    lines = [f"{args.keys} keys written with `SET key:N <70 B> EX 1` (redis-benchmark -c 20 -P 16), then idle:",
             "",
             "| server | DBSIZE peak | DBSIZE 0 after the last write (s) | no tombstone left (s) "
             "| CPU-s until DBSIZE 0 | idle CPU over 10 s, 5 s after | data dir MiB |",
             "|---|---|---|---|---|---|---|"]
    for name, peak, gone, settled, spent, idle, mib in rows:
        gone_s = f"{gone:.2f}" if gone is not None else f"not within {args.limit:.0f}"
        settled_s = f"{settled:.2f}" if settled is not None else f"not within {args.limit:.0f}"
        mib_s = f"{mib:.0f}" if mib is not None else "-"
        lines.append(f"| {name} | {peak} | {gone_s} | {settled_s} | {spent:.2f} | {idle:.1f}% | {mib_s} |")
    if scan:
        (empty_full, empty_first), (churned_full, churned_first) = scan
        lines += ["", f"SCAN over a node on which {args.scan_keys} keys expired, against an empty node "
                  "(redis-py; full iteration with COUNT 1000, median of 5; slowest of 20 `SCAN 0 COUNT 10`):", "",
                  "| node | full SCAN ms | SCAN 0 COUNT 10 ms (max) |", "|---|---|---|",
                  f"| empty | {empty_full:.2f} | {empty_first:.2f} |",
                  f"| {args.scan_keys} keys expired | {churned_full:.2f} | {churned_first:.2f} |"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
