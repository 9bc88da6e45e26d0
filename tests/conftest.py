"""Fixtures that run real Meridian nodes as separate processes on real sockets."""

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("MERIDIAN_BIN", ROOT / "target" / "debug" / "meridian"))


_rng = random.Random()
# Ports already handed out in this run: a port is free when checked but not yet bound by the
# node it is for, so two calls in a row could hand out the same one (a node once got the same
# port for RESP and HTTP and could not start).
_handed_out = set()


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999). A port from that range can be
    handed to an outgoing connection while a node is down, and a client connecting to a port
    nobody listens on can then connect to itself and read its own PING back."""
    while True:
        port = _rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port


class Node:
    """One `meridian server` process with its own ports and data directory."""

    def __init__(self, data_dir: Path, *extra: str, env: dict | None = None, node_id: str = "test-node",
                 host: str = "127.0.0.1", netns: str | None = None):
        self.data_dir = data_dir
        self.node_id = node_id
        self.host = host
        # A node in its own network namespace has the ports of its address to itself.
        self.netns = netns
        self.port = 7379 if netns else free_port()
        self.http_port = 7380 if netns else free_port()
        self.peer_port = 7381 if netns else free_port()
        self.extra = list(extra)
        self.env = env
        self.proc = None
        self.log = data_dir.parent.parent / f"{data_dir.parent.name}-{data_dir.name}.log"

    def start(self, wait: float = 20.0):
        args = [
            str(BIN), "server",
            "--node-id", self.node_id,
            "--data-dir", str(self.data_dir),
            "--resp-addr", f"{self.host}:{self.port}",
            "--http-addr", f"{self.host}:{self.http_port}",
            "--peer-addr", f"{self.host}:{self.peer_port}",
            *self.extra,
        ]
        # Clients reach a node in another network namespace from outside loopback: without a
        # password, protected mode would refuse them (tests/test_security.py tests it).
        if self.netns and not {"--requirepass", "--protected-mode"} & set(self.extra):
            args += ["--protected-mode", "no"]
        if self.netns:
            args = ["ip", "netns", "exec", self.netns, *args]
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), env=env)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"meridian exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with self.client() as probe:
                    if probe.ping() is True:
                        return self
            except redis.exceptions.AuthenticationError:
                return self  # up, and asking who the client is
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.02)
        raise RuntimeError("meridian did not start in time")

    def client(self, **kw) -> redis.Redis:
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, sig=signal.SIGTERM, timeout=20) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def node_factory(tmp_path):
    nodes = []

    def make(*extra, env=None, name="data", data_dir=None, node_id="test-node", host="127.0.0.1", netns=None):
        n = Node(data_dir or tmp_path / name, *extra, env=env, node_id=node_id, host=host, netns=netns)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()


@pytest.fixture
def node(node_factory):
    return node_factory().start()


@pytest.fixture
def r(node):
    return node.client(decode_responses=True)


@pytest.fixture
def make_hosts():
    """Makes `count` hosts (network namespaces, tests/netns.py), removed after the test; the
    test is skipped, with the reason, where they cannot be made (not root, no iptables)."""
    import netns

    made = []

    def make(count):
        reason = netns.why_not()
        if reason:
            pytest.skip(f"needs network namespaces: {reason}")
        made.append(netns.Hosts(count))
        return made[-1]

    yield make
    for h in made:
        h.close()
