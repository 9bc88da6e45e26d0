#!/usr/bin/env python3
"""Meridian against redis-server 7, side by side in one run, at matched durability.

    cargo build --release -p meridian && python3 bench/run.py [--requests N] [--out bench/RESULTS.md]

For each durability pair (Meridian --fsync batch vs redis appendfsync everysec, and always vs
always) and each test (SET, GET, INCR, HSET, SADD), redis-benchmark runs with 50 clients,
without and with pipelining (-P 16), first against redis-server and then against Meridian,
with random keys over 100k. Then both are filled with 1M keys (16-byte keys, 100-byte values)
and their resident memory is read from /proc. Writes a Markdown table of throughput ratios and
p50/p99 latencies.
"""

import argparse
import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["set", "get", "incr", "hset", "sadd"]
# The families of issue 13 (`--families`): lists, sorted sets, SPOP, MSET, MULTI/EXEC.
FAMILIES = ["lpush", "rpush", "lpop", "rpop", "lrange_100", "lrange_600", "zadd", "zpopmin", "spop", "mset", "multi"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} never opened")


def start_redis(fsync, workdir):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "yes", "--appendfsync", fsync,
         "--dir", str(workdir), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def start_meridian(fsync, workdir, binary):
    port, http = free_port(), free_port()
    proc = subprocess.Popen(
        [binary, "server", "--node-id", "bench", "--data-dir", str(workdir), "--resp-addr", f"127.0.0.1:{port}",
         "--http-addr", f"127.0.0.1:{http}", "--peer-addr", f"127.0.0.1:{free_port()}", "--fsync", fsync],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


# Rows that read or take what another row writes: the key is filled by that row first (not
# measured), with members drawn over 1M so that the pops find most of what they ask for.
PREFILL = {"lpop": "lpush", "rpop": "lpush", "zpopmin": "zadd", "spop": "sadd"}


def bench(port, test, requests, pipeline):
    if test == "multi":
        return bench_multi(port, requests // 10)
    if test in PREFILL:
        subprocess.run(
            ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-r", "1000000", "-d", "100",
             "-P", "16", "-t", PREFILL[test], "--csv"], capture_output=True, check=True)
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-r", "100000", "-d", "100",
         "-P", str(pipeline), "-t", test, "--csv"],
        capture_output=True, text=True, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    # LRANGE rows come after the LPUSH that fills their list: take the row of the test asked.
    row = next(r for r in rows if r["test"].upper().startswith(test.upper()))
    return float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"])


def bench_multi(port, transactions):
    """`MULTI`, five `SET`s of random keys over 100k, `EXEC`, `transactions` times on one
    connection through `redis-cli --pipe` (redis-benchmark sends one command per request).
    Answers transactions per second; no latencies (the pipe waits only for the last reply)."""
    import random
    rng = random.Random(1)
    value = b"v" * 100
    proto = bytearray()
    for _ in range(transactions):
        proto += b"*1\r\n$5\r\nMULTI\r\n"
        for _ in range(5):
            key = b"key:%06d" % rng.randrange(100000)
            proto += b"*3\r\n$3\r\nSET\r\n$10\r\n" + key + b"\r\n$100\r\n" + value + b"\r\n"
        proto += b"*1\r\n$4\r\nEXEC\r\n"
    started = time.perf_counter()
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=bytes(proto), capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    return transactions / elapsed, float("nan"), float("nan")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill(port, keys=1_000_000):
    """Writes `keys` distinct 16-byte keys with 100-byte values through redis-cli --pipe."""
    value = b"v" * 100
    proto = bytearray()
    for i in range(keys):
        key = b"key:%012d" % i
        proto += b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$100\r\n" + value + b"\r\n"
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=bytes(proto), capture_output=True, check=True)
    out = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "meridian"))
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--only-memory", action="store_true")
    ap.add_argument("--tests", help="comma-separated rows to run (default: all of the table's)")
    ap.add_argument("--pipelines", default="1,16", help="comma-separated pipeline depths")
    ap.add_argument("--families", action="store_true",
                    help="the list, sorted set, SPOP and MSET rows, under --fsync batch, into bench/FAMILIES.md")
    args = ap.parse_args()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    lines = [
        "# Benchmark: Meridian against redis-server",
        "",
        f"Run on {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} cores; client and servers share them), "
        f"redis-server {redis_version}, redis-benchmark with 50 clients, {args.requests} requests per row, "
        "random keys over 100k, 100-byte values.",
        "",
        "Reproduce: `cargo build --release -p meridian && python3 bench/run.py`",
        "",
        "| durability | test | pipeline | redis ops/s | meridian ops/s | ratio | redis p50/p99 ms | meridian p50/p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pairs = [] if args.only_memory else [("batch", "everysec"), ("always", "always")]
    tests = TESTS
    if args.families:
        pairs, tests, args.skip_memory = [("batch", "everysec")], FAMILIES, True
        if args.out == str(ROOT / "bench" / "RESULTS.md"):
            args.out = str(ROOT / "bench" / "FAMILIES.md")
        lines[0] = "# Benchmark: Meridian against redis-server, lists, sorted sets and more"
        lines[5] = "Reproduce: `cargo build --release -p meridian && python3 bench/run.py --families`"
    if args.tests:
        tests = args.tests.split(",")
    for m_fsync, r_fsync in pairs:
        for pipeline in [int(p) for p in args.pipelines.split(",")]:
            for test in tests:
                if test == "multi" and pipeline != 1:
                    continue  # one row: the pipe is as deep as the whole run
                results = {}
                for name in ("redis", "meridian"):
                    with tempfile.TemporaryDirectory() as work:
                        if name == "redis":
                            proc, port = start_redis(r_fsync, work)
                        else:
                            proc, port = start_meridian(m_fsync, work, args.binary)
                        try:
                            results[name] = bench(port, test, args.requests, pipeline)
                        finally:
                            stop(proc)
                (r_rps, r50, r99), (m_rps, m50, m99) = results["redis"], results["meridian"]
                name = "MULTI/EXEC of 5 SET (one connection, redis-cli --pipe)" if test == "multi" else test.upper()
                row = (f"| meridian {m_fsync} / redis {r_fsync} | {name} | {pipeline} | {r_rps:,.0f} | "
                       f"{m_rps:,.0f} | {m_rps / r_rps:.2f}x | {r50:.2f} / {r99:.2f} | {m50:.2f} / {m99:.2f} |")
                print(row, flush=True)
                lines.append(row)
    if not args.skip_memory:
        lines += ["", "## Resident memory holding 1M keys (16-byte keys, 100-byte values)", "",
                  "| server | keys | RSS MiB |", "|---|---|---|"]
        for name in ("redis", "meridian"):
            with tempfile.TemporaryDirectory() as work:
                proc, port = start_redis("everysec", work) if name == "redis" else start_meridian("batch", work, args.binary)
                try:
                    keys = fill(port)
                    time.sleep(2)
                    row = f"| {name} | {keys:,} | {rss_mib(proc.pid):,.0f} |"
                finally:
                    stop(proc)
            print(row, flush=True)
            lines.append(row)
    # Hand-written analysis below the marker survives a re-run.
    marker = "<!-- notes: kept across runs -->"
    out = Path(args.out)
    notes = ""
    if out.exists() and marker in out.read_text():
        notes = out.read_text().split(marker, 1)[1]
    out.write_text("\n".join(lines) + "\n\n" + marker + notes.rstrip() + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        sys.exit("needs redis-server and redis-benchmark: apt-get install redis-server redis-tools")
    main()
