"""Bad input gets a clear error, changes nothing, and other clients keep being served."""

import socket
import time

import pytest
import redis


def raw(node, payload: bytes, read_until_close=True, timeout=5.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", node.port), timeout=timeout)
    s.sendall(payload)
    chunks = []
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            if not read_until_close:
                break
    finally:
        s.close()
    return b"".join(chunks)


@pytest.mark.parametrize(
    "frame, error",
    [
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"*1\r\n$3\r\nabcd\r\n", b"-ERR Protocol error: invalid bulk format\r\n"),
        (b'SET "a b\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    ],
)
def test_malformed_frames_get_error_and_close(node, frame, error):
    c = node.client()
    c.set("k", "before")
    # A good command before the bad frame is answered; the bad frame gets the error, then EOF.
    out = raw(node, b"*3\r\n$3\r\nSET\r\n$4\r\ngood\r\n$1\r\n1\r\n" + frame)
    assert out == b"+OK\r\n" + error
    assert c.get("k") == b"before"
    assert c.get("good") == b"1"


def test_truncated_frame_changes_nothing(node):
    c = node.client()
    s = socket.create_connection(("127.0.0.1", node.port))
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nt\r\n$10\r\nonly")
    s.close()
    time.sleep(0.1)
    assert c.get("t") is None
    assert c.ping()


def test_inline_commands(node):
    assert raw(node, b"PING\r\nSET k \"a b\"\r\nGET k\r\nQUIT\r\n") == b"+PONG\r\n+OK\r\n$3\r\na b\r\n+OK\r\n"


def test_limits_are_configurable(node_factory):
    n = node_factory("--max-bulk-len", "1024", "--max-multibulk-len", "8", "--max-inline-len", "256").start()
    c = n.client()
    assert c.set("small", b"x" * 1024)
    assert raw(n, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n") == b"-ERR Protocol error: invalid bulk length\r\n"
    assert raw(n, b"*9\r\n") == b"-ERR Protocol error: invalid multibulk length\r\n"
    assert raw(n, b"A" * 300) == b"-ERR Protocol error: too big inline request\r\n"
    assert c.get("k") is None
    assert c.get("small") == b"x" * 1024


def test_query_buffer_limit_closes_only_that_client(node_factory):
    n = node_factory("--max-query-buffer", "100000").start()
    other = n.client()
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$500000\r\n")
    closed = False
    try:
        for _ in range(20):
            s.sendall(b"x" * 50_000)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        s.settimeout(5)
        try:
            closed = s.recv(10) == b""
        except ConnectionResetError:
            closed = True
    assert closed
    assert other.get("q") is None
    assert other.ping()


def wait_connections(node, count, timeout=10.0):
    """Waits until the node counts `count` open client connections (closing is asynchronous)."""
    import json
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/v1/status"))
        if status["connections"] == count:
            return
        assert time.monotonic() < deadline, f"node still counts {status['connections']} connections"
        time.sleep(0.02)


def test_connection_limit(node_factory):
    n = node_factory("--max-clients", "3").start()
    wait_connections(n, 0)  # the start-up probe has gone
    held = [socket.create_connection(("127.0.0.1", n.port)) for _ in range(3)]
    for h in held:
        h.sendall(b"PING\r\n")
        assert h.recv(100) == b"+PONG\r\n"
    assert raw(n, b"PING\r\n") == b"-ERR max number of clients reached\r\n"
    held.pop().close()
    wait_connections(n, 2)
    assert n.client().ping()


def test_garbage_from_many_clients_never_hurts_others(node):
    import random

    rng = random.Random(7)
    good = node.client()
    good.set("stable", "yes")
    for _ in range(50):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        try:
            raw(node, junk, read_until_close=False, timeout=0.05)
        except (socket.timeout, ConnectionResetError):
            pass
    assert good.get("stable") == b"yes"
    assert good.dbsize() >= 1
    assert node.proc.poll() is None


def test_subscribed_connection_refuses_other_commands(node):
    out = raw(node, b"SUBSCRIBE ch\r\nGET x\r\nPING\r\nQUIT\r\n")
    assert out.startswith(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
    assert b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n" in out
    assert out.endswith(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n+OK\r\n")


def test_a_large_pipeline_is_answered_whole_and_in_order(node):
    """Megabytes of pipelined commands sent at once (read ahead in large pieces, run as few
    rounds): every reply comes, in order, and the writes all land."""
    value = b"v" * 1000
    n = 3000
    payload = b"".join(
        b"*3\r\n$3\r\nSET\r\n$%d\r\nbig:%d\r\n$1000\r\n%s\r\n*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n"
        % (len(b"big:%d" % i), i, value)
        for i in range(n)
    ) + b"*1\r\n$4\r\nQUIT\r\n"
    assert len(payload) > 3_000_000
    want = b"".join(b"+OK\r\n:%d\r\n" % (i + 1) for i in range(n)) + b"+OK\r\n"
    assert raw(node, payload, timeout=30) == want
    c = node.client()
    assert c.get("counter") == b"%d" % n
    assert c.get("big:%d" % (n - 1)) == value
