"""Gossip is encrypted and authenticated under a keyring (`--gossip-keyring`, `meridian
keyring`): a datagram read from the socket holds no node name, region or address; replays,
other clusters' datagrams and garbage are dropped and counted by reason; the keyring rotates
(install, use, remove, SIGHUP node by node) while every member stays up."""

import hashlib
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import BIN
from test_replication import peer_state, wait_for


def keyring(*args):
    return subprocess.run([str(BIN), "keyring", *args], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()


def rejected(node, reason) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("meridian_gossip_rejected_total{") and f'reason="{reason}"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def capture(node_factory, *extra, name):
    """Starts a node whose seed is a UDP socket of this test; answers the node and the first
    gossip datagram it sent there."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    seed = f"127.0.0.1:{udp.getsockname()[1]}"
    node = node_factory("--region", "secret-region", "--join", seed, *extra, name=name,
                        node_id=f"{name}-visible-name").start()
    datagram, _ = udp.recvfrom(65536)
    udp.close()
    return node, datagram


def send(node, datagram):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(datagram, ("127.0.0.1", node.peer_port))


def test_gossip_on_the_wire_is_sealed_and_strangers_and_replays_are_dropped(node_factory, tmp_path):
    keys = tmp_path / "gossip.keys"
    keyring("install", keyring("generate"), "--file", str(keys))
    a, datagram = capture(node_factory, "--gossip-keyring", str(keys), name="a")
    for clear in (b"a-visible-name", b"secret-region", str(a.peer_port).encode()):
        assert clear not in datagram, f"{clear!r} readable in a gossip datagram"

    # Another node of the same cluster accepts it once; the same datagram again is a replay.
    b = node_factory("--gossip-keyring", str(keys), name="b", node_id="b").start()
    send(b, datagram)
    send(b, datagram)
    wait_for(lambda: rejected(b, "replayed") >= 1, what="the replay to be counted")

    # A node of another cluster (its own key), a forged copy, and garbage.
    _, foreign = capture(node_factory, "--cluster-secret", "another cluster", name="c")
    send(b, foreign)
    forged = bytearray(datagram)
    forged[-1] ^= 1
    send(b, bytes(forged))
    send(b, b"\x02not a datagram")
    wait_for(lambda: rejected(b, "unknown_key") >= 1 and rejected(b, "forged") >= 1
             and rejected(b, "malformed") >= 1, what="the refusals to be counted")
    assert b.client().ping()


def test_the_keyring_rotates_with_every_member_up_throughout(node_factory, tmp_path):
    old = keyring("generate")
    nodes = []
    for region in ("eu", "us", "ap"):
        f = tmp_path / f"{region}.keys"
        keyring("install", old, "--file", str(f))
        join = ["--join", f"127.0.0.1:{nodes[0].peer_port}"] if nodes else []
        n = node_factory("--region", region, "--gossip-keyring", str(f), *join, name=f"{region}-1",
                         node_id=f"{region}-1").start()
        n.keys = f
        nodes.append(n)

    def all_up():
        return all(peer_state(n, m.node_id) == "up" for n in nodes for m in nodes if m is not n)

    wait_for(all_up, what="every member up")
    new = keyring("generate")
    for step in (("install", new), ("use", new), ("remove", old)):
        for n in nodes:
            keyring(*step, "--file", str(n.keys))
            n.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert all_up(), f"a member is not up after {step[0]} on {n.node_id}"
    time.sleep(2)
    assert all_up()
    new_id = hashlib.sha256(bytes.fromhex(new)).digest()[:4].hex()
    assert all(keyring("list", "--file", str(n.keys)).split() == [new_id, "in", "use"] for n in nodes)
    assert all(rejected(n, "unknown_key") == 0 for n in nodes)

    # A node left on the old key alone is now a stranger: it never comes up.
    stale = tmp_path / "stale.keys"
    keyring("install", old, "--file", str(stale))
    outsider = node_factory("--region", "xx", "--gossip-keyring", str(stale), "--join",
                            f"127.0.0.1:{nodes[0].peer_port}", name="xx-1", node_id="xx-1").start()
    wait_for(lambda: rejected(nodes[0], "unknown_key") >= 1, what="the old key to be refused")
    # Its gossip stays refused, datagram after datagram. (Its replication link, which the
    # gossip key does not guard, may open: INFO then reports it up on that evidence alone, so
    # INFO's state is not what this checks; a check of it raced with the link in CI.)
    first = rejected(nodes[0], "unknown_key")
    wait_for(lambda: rejected(nodes[0], "unknown_key") >= first + 2, what="its gossip refused again")
    outsider.stop()
