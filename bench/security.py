#!/usr/bin/env python3
"""What security costs: Meridian against redis-server 7 over TLS and with ACL checks, side by
side in one run, beside the plaintext rows.

    cargo build --release -p meridian && python3 bench/security.py [--requests N] [--out bench/SECURITY.md]

Both servers get the same certificate (`meridian cert`, ECDSA P-256) and the same durability
(Meridian --fsync batch, redis appendfsync everysec). Modes, each SET and GET at pipeline 1
and 16 with redis-benchmark (50 clients, random keys over 100k, 100-byte values):
- plain: the default user without a password (no rule to check);
- acl: logged in as a user with rules (`~key:* +@all -@dangerous`), checked on every command;
- tls: plain's user over TLS 1.3 (`redis-benchmark --tls`, no client certificate);
- plain again, last: the spread between the two plain runs is the run's noise, against which
  the ACL rows' cost is read.
"""

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, stop, wait_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODES = ["plain", "acl", "tls", "plain again"]
RULES = ["on", ">bench-pw", "~key:*", "+@all", "-@dangerous"]


def make_certs(binary, work):
    ca_dir, certs = work / "ca", work / "certs"
    subprocess.run([binary, "cert", "create-ca", "--certs-dir", str(ca_dir), "--ca-key", str(work / "ca.key")],
                   check=True, capture_output=True)
    certs.mkdir()
    shutil.copy(ca_dir / "ca.crt", certs / "ca.crt")
    subprocess.run([binary, "cert", "create-node", "bench", "127.0.0.1", "--certs-dir", str(certs),
                    "--ca-key", str(work / "ca.key")], check=True, capture_output=True)
    return certs


def start_redis(work, certs):
    port, tls = free_port(), free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
         "--dir", str(work), "--daemonize", "no", "--tls-port", str(tls),
         "--tls-cert-file", str(certs / "node.crt"), "--tls-key-file", str(certs / "node.key"),
         "--tls-ca-cert-file", str(certs / "ca.crt"), "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port, tls


def start_meridian(binary, work, certs):
    port, tls, http = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [binary, "server", "--node-id", "bench", "--data-dir", str(work), "--resp-addr", f"127.0.0.1:{port}",
         "--http-addr", f"127.0.0.1:{http}", "--peer-addr", f"127.0.0.1:{free_port()}", "--fsync", "batch",
         "--certs-dir", str(certs), "--tls-port", str(tls), "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port, tls


def bench(port, tls_port, certs, mode, test, requests, pipeline):
    args = ["redis-benchmark", "-c", "50", "-n", str(requests), "-r", "100000", "-d", "100",
            "-P", str(pipeline), "-t", test, "--csv"]
    if mode == "tls":
        args += ["-p", str(tls_port), "--tls", "--cacert", str(certs / "ca.crt")]
    else:
        args += ["-p", str(port)]
    if mode == "acl":
        args += ["--user", "bench", "-a", "bench-pw"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    return float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "SECURITY.md"))
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "meridian"))
    opts = ap.parse_args()
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        certs = make_certs(opts.binary, work)
        (work / "redis").mkdir()
        redis, r_port, r_tls = start_redis(work / "redis", certs)
        meridian, m_port, m_tls = start_meridian(opts.binary, work / "meridian", certs)
        try:
            for port in (r_port, m_port):
                subprocess.run(["redis-cli", "-p", str(port), "ACL", "SETUSER", "bench", *RULES],
                               check=True, capture_output=True)
            for mode in MODES:
                for pipeline in (1, 16):
                    for test in ("set", "get"):
                        r = bench(r_port, r_tls, certs, mode, test, opts.requests, pipeline)
                        m = bench(m_port, m_tls, certs, mode, test, opts.requests, pipeline)
                        rows.append((mode, test.upper(), pipeline, r, m))
                        print(f"{mode:<12} {test.upper():<4} P{pipeline:<3} redis {r[0]:>11,.0f}  "
                              f"meridian {m[0]:>11,.0f}  {m[0] / r[0]:.2f}x", flush=True)
        finally:
            stop(redis)
            stop(meridian)

    def rps(mode, test, pipeline, side):
        return next(r[3 + side][0] for r in rows if r[:3] == (mode, test, pipeline))

    lines = [
        "# Benchmark: what TLS and ACL checks cost, Meridian against redis-server",
        "",
        f"Run on {time.strftime('%Y-%m-%d')} on this machine (2 cores; client and servers share them), "
        f"redis-server v={version}, redis-benchmark with 50 clients, {opts.requests} requests per row, "
        "random keys over 100k, 100-byte values; Meridian `--fsync batch`, redis `appendfsync everysec`; "
        "one certificate from `meridian cert` (ECDSA P-256) for both, TLS 1.3, no client certificates.",
        "",
        "Reproduce: `cargo build --release -p meridian && python3 bench/security.py`",
        "",
        "| mode | test | pipeline | redis ops/s | meridian ops/s | ratio | redis p50/p99 ms | meridian p50/p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, test, pipeline, r, m in rows:
        lines.append(f"| {mode} | {test} | {pipeline} | {r[0]:,.0f} | {m[0]:,.0f} | {m[0] / r[0]:.2f}x | "
                     f"{r[1]:.2f} / {r[2]:.2f} | {m[1]:.2f} / {m[2]:.2f} |")
    lines += ["", "Each server against itself (ops/s of the mode over plain's, first plain run):", "",
              "| test | pipeline | redis tls | meridian tls | redis acl | meridian acl | meridian plain again (noise) |",
              "|---|---|---|---|---|---|---|"]
    for pipeline in (1, 16):
        for test in ("SET", "GET"):
            cells = []
            for mode, side in (("tls", 0), ("tls", 1), ("acl", 0), ("acl", 1), ("plain again", 1)):
                cells.append(f"{rps(mode, test, pipeline, side) / rps('plain', test, pipeline, side):.2f}")
            lines.append(f"| {test} | {pipeline} | " + " | ".join(cells) + " |")
    Path(opts.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
