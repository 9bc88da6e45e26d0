#!/usr/bin/env python3
"""Time series: Meridian's ingest and range queries beside redis-server holding the same samples
as a plain Redis user would (a stream per sensor with XADD, a sorted set per sensor with ZADD),
in one run on this machine (issue 16).

Rows:
- ingest, samples/s: Meridian TS.MADD pipelined (100 samples a command, 16 commands in flight)
  and TS.ADD pipelined; redis-server XADD pipelined (one sample a command, as XADD takes one
  entry) and ZADD pipelined (100 samples of one sensor a command); Meridian over MQTT at QoS 1
  (paho-mqtt, one reading a message and 100 readings a message, 256 messages in flight).
- a range with aggregation over 1M samples of one sensor: TS.RANGE ... AGGREGATION avg 1h
  against ZRANGE ... BYSCORE of the same million on redis-server (which returns them all; the
  client would aggregate on top).
- disk: the data directories after the run (Meridian's windows measured apart from its change
  log and journal).
- replication lag of a sample between regions (three local nodes, no simulated WAN): TS.ADD on
  one, polled with TS.GET on another.

One client process drives every row (the same generator for every server), with RESP encoded
up front and replies read by hiredis, so the servers are compared under the same client; the
client shares the machine's 2 cores with the server it drives.

Reproduce: `pip install hiredis paho-mqtt && cargo build --release -p meridian &&
python3 bench/timeseries.py --out bench/TIMESERIES.md`
"""

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import hiredis
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "meridian"
BASE = 1_700_000_000_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(*words):
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        w = w if isinstance(w, bytes) else str(w).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)


def value(sensor, i):
    return round(20 + 5 * math.sin((i + 37 * sensor) / 600.0), 1)


def blast(port, commands, depth):
    """Sends `commands` (encoded) keeping `depth` in flight; answers (seconds, errors)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()
    errors = 0
    started = time.perf_counter()
    for at in range(0, len(commands), depth):
        chunk = commands[at:at + depth]
        sock.sendall(b"".join(chunk))
        got = 0
        while got < len(chunk):
            reply = reader.gets()
            if reply is False:
                data = sock.recv(1 << 20)
                if not data:
                    raise RuntimeError(f"the server on {port} closed the connection")
                reader.feed(data)
                continue
            got += 1
            if isinstance(reply, hiredis.ReplyError):
                errors += 1
            elif isinstance(reply, list):
                errors += sum(isinstance(r, hiredis.ReplyError) for r in reply)
    took = time.perf_counter() - started
    sock.close()
    return took, errors


def du(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class Servers:
    def __init__(self, work):
        self.work = work
        self.procs = []

    def redis(self):
        port = free_port()
        d = self.work / f"redis-{port}"
        d.mkdir()
        p = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "yes",
                              "--appendfsync", "everysec", "--dir", str(d)], stdout=subprocess.DEVNULL)
        self.procs.append(p)
        wait_up(port)
        return port, d

    def meridian(self, name="n1", region="eu", join=None, mqtt=True):
        port, http, peer = free_port(), free_port(), free_port()
        mqtt_port = free_port() if mqtt else None
        d = self.work / name
        args = [str(BIN), "server", "--node-id", name, "--region", region, "--data-dir", str(d),
                "--resp-addr", f"127.0.0.1:{port}", "--http-addr", f"127.0.0.1:{http}",
                "--peer-addr", f"127.0.0.1:{peer}", "--fsync", "batch"]
        if mqtt_port:
            args += ["--mqtt-addr", f"127.0.0.1:{mqtt_port}"]
        if join:
            args += ["--join", join]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.work / f"{name}.log", "ab"))
        self.procs.append(p)
        wait_up(port)
        return {"port": port, "mqtt": mqtt_port, "dir": d, "peer": f"127.0.0.1:{peer}", "proc": p}

    def stop_all(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)


def wait_up(port):
    for _ in range(400):
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def madd_commands(sensors, per_sensor, batch, offset=0, key=None):
    """TS.MADD commands of `batch` samples, sensors interleaved, time moving on."""
    out, words = [], [b"TS.MADD"]
    for i in range(per_sensor):
        for s in range(sensors):
            name = key or b"s:%d" % s
            words += [name, b"%d" % (BASE + (offset + i) * 1000), b"%.1f" % value(s, i)]
            if len(words) == 1 + 3 * batch:
                out.append(encode(*words))
                words = [b"TS.MADD"]
    if len(words) > 1:
        out.append(encode(*words))
    return out


def ingest(args, rows):
    sensors, per = args.sensors, args.samples // args.sensors
    n = sensors * per
    with tempfile.TemporaryDirectory() as work:
        servers = Servers(Path(work))
        try:
            m = servers.meridian()
            r_port, r_dir = servers.redis()
            mc = redis.Redis(port=m["port"])
            for s in range(sensors):
                mc.execute_command("TS.CREATE", f"s:{s}", "LABELS", "group", "bench")
                mc.execute_command("TS.CREATE", f"a:{s}", "LABELS", "group", "bench-add")
            madd = madd_commands(sensors, per, 100)
            took, errors = blast(m["port"], madd, 16)
            rows.append(("Meridian TS.MADD (100 samples a command, 16 in flight)", n, n / took, errors))
            adds = [encode(b"TS.ADD", b"a:%d" % s, b"%d" % (BASE + i * 1000), b"%.1f" % value(s, i))
                    for i in range(per // 4) for s in range(sensors)]
            took, errors = blast(m["port"], adds, 256)
            rows.append(("Meridian TS.ADD (one sample a command, 256 in flight)", len(adds), len(adds) / took, errors))
            xadds = [encode(b"XADD", b"x:%d" % s, b"%d-0" % (BASE + i * 1000), b"v", b"%.1f" % value(s, i))
                     for i in range(per) for s in range(sensors)]
            took, errors = blast(r_port, xadds, 256)
            rows.append(("redis-server XADD (one sample a command, 256 in flight)", n, n / took, errors))
            zadds = []
            for s in range(sensors):
                for at in range(0, per, 100):
                    words = [b"ZADD", b"z:%d" % s]
                    for i in range(at, min(per, at + 100)):
                        words += [b"%d" % (BASE + i * 1000), b"%d:%.1f" % (BASE + i * 1000, value(s, i))]
                    zadds.append(encode(*words))
            took, errors = blast(r_port, zadds, 16)
            rows.append(("redis-server ZADD (100 samples a command, 16 in flight)", n, n / took, errors))
            mqtt_rows(m, args, rows)
            # Disk, once the servers have written what they hold.
            big = redis.Redis(port=m["port"])
            big.execute_command("TS.CREATE", "million")
            million = madd_commands(1, 1_000_000, 1000, key=b"million")
            blast(m["port"], million, 8)
            rz = []
            for at in range(0, 1_000_000, 1000):
                words = [b"ZADD", b"million"]
                for i in range(at, at + 1000):
                    words += [b"%d" % (BASE + i * 1000), b"%d:%.1f" % (BASE + i * 1000, value(0, i))]
                rz.append(encode(*words))
            blast(r_port, rz, 8)
            query(m["port"], r_port, rows)
            time.sleep(2)
            stats = redis.Redis(port=m["port"]).info("stats")
            del stats
            servers.stop_all()
            total = n * 2 + len(adds) + 1_000_000 + args.mqtt_messages * 101
            disk = {
                "meridian data directory": du(m["dir"]),
                "redis-server AOF (streams, sorted sets)": du(r_dir),
            }
            rows.append(("disk", total, disk, 0))
        finally:
            servers.stop_all()


def mqtt_rows(m, args, rows):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    for per_message in (1, 100):
        count = args.mqtt_messages
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{per_message}", protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(256)
        c.max_queued_messages_set(0)
        acked = threading.Semaphore(0)
        c.on_publish = lambda cl, ud, mid, reason, props: acked.release()
        c.connect("127.0.0.1", m["mqtt"])
        c.loop_start()
        payloads = []
        for i in range(count):
            if per_message == 1:
                payloads.append(json.dumps({"ts": BASE + i * 1000, "value": value(1, i)}))
            else:
                payloads.append(json.dumps([{"ts": BASE + (i * 100 + j) * 1000, "value": value(1, j)}
                                            for j in range(100)]))
        started = time.perf_counter()
        for i, p in enumerate(payloads):
            c.publish(f"sensors/bench/m{per_message}/temp", p, qos=1)
        for _ in range(count):
            acked.acquire()
        took = time.perf_counter() - started
        c.loop_stop()
        c.disconnect()
        rows.append((f"Meridian MQTT 5 QoS 1 ({per_message} reading{'s' if per_message > 1 else ''} a message, 256 in flight)",
                     count * per_message, count * per_message / took, 0))


def query(m_port, r_port, rows):
    mc, rc = redis.Redis(port=m_port), redis.Redis(port=r_port)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        out = mc.execute_command("TS.RANGE", "million", "-", "+", "AGGREGATION", "avg", 3_600_000)
        times.append(time.perf_counter() - t)
    m_best = min(times)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        got = rc.execute_command("ZRANGE", "million", "-inf", "+inf", "BYSCORE")
        times.append(time.perf_counter() - t)
    r_best = min(times)
    rows.append(("range", len(out), (m_best, r_best, len(got)), 0))


def lag(args, rows):
    with tempfile.TemporaryDirectory() as work:
        servers = Servers(Path(work))
        try:
            eu = servers.meridian("eu-1", "eu", mqtt=False)
            us = servers.meridian("us-1", "us", join=eu["peer"], mqtt=False)
            ec, uc = redis.Redis(port=eu["port"]), redis.Redis(port=us["port"])
            for _ in range(200):
                if int(uc.info("replication").get("connected_peers", 0)) == 1:
                    break
                time.sleep(0.05)
            ec.execute_command("TS.CREATE", "lag")
            for _ in range(200):
                if uc.exists("lag"):
                    break
                time.sleep(0.01)
            lags = []
            for i in range(200):
                ts = int(time.time() * 1000) * 1000 + i
                t = time.perf_counter()
                ec.execute_command("TS.ADD", "lag", ts, i)
                while True:
                    got = uc.execute_command("TS.GET", "lag")
                    if got and int(got[0]) == ts:
                        break
                lags.append((time.perf_counter() - t) * 1000)
                time.sleep(0.005)
            lags.sort()
            rows.append(("lag", len(lags), (lags[len(lags) // 2], lags[int(len(lags) * 0.99)]), 0))
        finally:
            servers.stop_all()


def report(rows, args):
    lines = ["# Benchmark: time series (issue 16)", ""]
    lines.append(f"Run on {time.strftime('%Y-%m-%d')} on this machine (2 cores; client and servers share them), "
                 f"{subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]}; "
                 f"Meridian with --fsync batch, redis-server with appendonly yes, appendfsync everysec. "
                 f"{args.sensors} sensors, one sample a second each, values with one decimal.")
    lines += ["", "Reproduce: `pip install hiredis paho-mqtt && cargo build --release -p meridian && "
              "python3 bench/timeseries.py --out bench/TIMESERIES.md`", ""]
    lines += ["## Ingest", "", "| how | samples | samples/s | errors |", "|---|---|---|---|"]
    xadd = next(r[2] for r in rows if r[0].startswith("redis-server XADD"))
    for name, n, rate, errors in rows:
        if isinstance(rate, float):
            lines.append(f"| {name} | {n:,} | {rate:,.0f} ({rate / xadd:.2f}x XADD) | {errors} |")
    for name, n, v, _ in rows:
        if name == "range":
            m, r, members = v
            lines += ["", "## A range with aggregation over 1M samples", "",
                      "| query | answer | best of 5, ms |", "|---|---|---|",
                      f"| Meridian TS.RANGE million - + AGGREGATION avg 3600000 | {n} buckets | {m * 1000:.0f} |",
                      f"| redis-server ZRANGE million -inf +inf BYSCORE (the client aggregates after) | {members:,} members | {r * 1000:.0f} |",
                      "", f"Ratio: Meridian answers in {m / r:.2f}x the time redis-server takes to hand the samples over."]
        if name == "disk":
            lines += ["", "## Disk after the run", "", "| what | bytes | bytes a sample |", "|---|---|---|"]
            for what, b in v.items():
                lines.append(f"| {what} | {b:,} | {b / n:.1f} |")
            lines.append("")
            lines.append("Meridian's data directory holds its journal and change log beside the windows; "
                         "the windows alone, compacted: `cargo test --release -p node --test series_disk -- --nocapture` "
                         "(1.02 bytes a sample for ten 1 Hz sensors).")
        if name == "lag":
            p50, p99 = v
            lines += ["", "## Replication lag of a sample (two local nodes, no WAN delay)", "",
                      f"TS.ADD on eu-1 until TS.GET on us-1 shows it, {n} samples: p50 {p50:.1f} ms, p99 {p99:.1f} ms."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        # What was written by hand below the marker (what bounds each row) stays.
        marker = "<!-- notes: kept across runs -->"
        out = Path(args.out)
        notes = out.read_text().split(marker, 1)[1] if out.exists() and marker in out.read_text() else ""
        out.write_text(text + "\n" + marker + notes.rstrip() + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sensors", type=int, default=100)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--mqtt-messages", type=int, default=20_000)
    p.add_argument("--out")
    args = p.parse_args()
    if not BIN.exists():
        sys.exit("build first: cargo build --release -p meridian")
    rows = []
    ingest(args, rows)
    lag(args, rows)
    report(rows, args)


if __name__ == "__main__":
    main()
