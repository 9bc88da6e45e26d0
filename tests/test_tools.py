"""The stock Redis tools work unchanged: redis-cli (also interactive), redis-benchmark."""

import json
import shutil
import subprocess
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-tools not installed")


def cli(node, *args, stdin=None):
    out = subprocess.run(["redis-cli", "-p", str(node.port), *args], input=stdin, capture_output=True, text=True, timeout=30)
    return out.stdout


def test_redis_cli_commands(node):
    assert cli(node, "SET", "a", "1").strip() == "OK"
    assert cli(node, "INCR", "a").strip() == "2"
    assert cli(node, "HSET", "h", "f", "v").strip() == "1"
    assert cli(node, "--no-raw", "HGETALL", "h").splitlines() == ['1) "f"', '2) "v"']
    assert cli(node, "GET", "h").strip().startswith("WRONGTYPE")
    assert "redis_version:7.0.15" in cli(node, "INFO", "server")


def interactive(node, lines):
    """Runs redis-cli in interactive mode on a pseudo-terminal, typing `lines`."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:
        # A dumb terminal: linenoise then reads plain lines instead of querying the cursor.
        os.environ["TERM"] = "dumb"
        os.execvp("redis-cli", ["redis-cli", "-p", str(node.port)])
    out = b""

    def read_for(seconds):
        nonlocal out
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return

    read_for(1.0)
    for line in lines:
        os.write(fd, line.encode() + b"\r")
        read_for(0.5)
    os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(errors="replace")


def test_redis_cli_interactive_and_pipe(node):
    out = interactive(node, ["SET x 10", "INCRBY x 5", "GET x", "HSET h a 1", "HGETALL h", "quit"])
    assert f"127.0.0.1:{node.port}>" in out
    assert "OK" in out and "(integer) 15" in out and '"15"' in out
    assert '1) "a"' in out and '2) "1"' in out
    proto = "".join(f"*3\r\n$3\r\nSET\r\n${len(f'p{i}')}\r\np{i}\r\n$1\r\n{i % 10}\r\n" for i in range(1000))
    out = subprocess.run(["redis-cli", "-p", str(node.port), "--pipe"], input=proto, capture_output=True, text=True, timeout=30)
    assert "errors: 0, replies: 1000" in out.stdout
    assert cli(node, "DBSIZE").strip() == "1002"


def test_redis_benchmark_runs_clean(node):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(node.port), "-q", "-n", "2000", "-c", "10", "-t", "set,get,incr,hset,sadd,mset", "-P", "4"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for test in ["SET", "GET", "INCR", "HSET", "SADD", "MSET"]:
        assert any(line.startswith(f"{test}") and "requests per second" in line for line in out.stdout.replace("\r", "\n").splitlines()), out.stdout
    assert cli(node, "GET", "counter:__rand_int__").strip() == "2000"


def test_http_status_and_metrics(node):
    c = node.client()
    c.set("a", "1")
    c.get("a")
    status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/v1/status"))
    assert status["node_id"] == "test-node" and status["region"] == "local" and status["keys"] == 1
    assert status["uptime_s"] >= 0 and status["version"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/metrics").read().decode()
    assert 'meridian_commands_total{command="set"} 1' in text
    assert "meridian_fsync_seconds_bucket" in text
    assert "meridian_request_seconds_count" in text
    assert "meridian_connections" in text
    assert "meridian_storage_bytes" in text
