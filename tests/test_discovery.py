"""Discovery (issue 15, items 2 and 4): every node runs a Sentinel-compatible listener where each
region is a master name, answered with the region's ready node, or the ready node of the nearest
region when it has none. Unmodified clients (redis-py's Sentinel, ioredis's `sentinels`) find their
node and fail over; a node that stops or is drained hands its clients over first; a node that
comes back is named again only once it has caught up."""

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel

from conftest import free_port
from test_replication import wait_for
from test_tls import pki  # noqa: F401  (openssl-made CA, node and client certificates)

# One-way WAN delays, as the demo's: us is nearest to eu, eu nearest to us, us nearest to ap.
ONE_WAY_MS = {("eu", "us"): 40, ("us", "ap"): 75, ("eu", "ap"): 110}
DELAYS = ",".join(f"{a}-{b}={ms}" for (a, b), ms in ONE_WAY_MS.items())
JS = Path(__file__).resolve().parent / "js"


def serving(node):
    """This node's serving status and its peers', from INFO replication."""
    info = node.client(password=getattr(node, "password", None)).info("replication")
    peers = {v["name"]: v.get("serving") for v in info.values() if isinstance(v, dict) and "serving" in v}
    return info.get("serving"), peers


def all_ready(nodes):
    for n in nodes:
        mine, peers = serving(n)
        if mine != "ready" or len(peers) != len(nodes) - 1 or any(s != "ready" for s in peers.values()):
            return False
    return True


def start(node_factory, extra=(), regions=("eu", "us", "ap")):
    """One node per region, each with a sentinel listener, under the demo's WAN delays."""
    nodes = []
    for region in regions:
        join = ["--join", f"127.0.0.1:{nodes[0].peer_port}"] if nodes else []
        n = node_factory("--region", region, "--wan-delay", DELAYS, *join, *extra,
                         name=f"{region}-1", node_id=f"{region}-1")
        n.sentinel_port = free_port()
        n.extra += ["--sentinel-addr", f"127.0.0.1:{n.sentinel_port}"]
        if "--requirepass" in extra:
            n.password = extra[list(extra).index("--requirepass") + 1]
        nodes.append(n.start())
    wait_for(lambda: all_ready(nodes), timeout=30, what="every node ready and seen ready")
    # Which region is nearest comes from the round trips each node measures, and, for pairs it
    # has no link between, predicts from network coordinates: settled within seconds.
    if len(regions) == 3:
        wait_for(lambda: all(matrix_settled(n) for n in nodes), timeout=30, what="the region matrix to settle")
    return nodes


def matrix_settled(node):
    """Every pair of regions within 20% of its configured round trip, at `node`."""
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/v1/cluster", timeout=5) as resp:
        regions = json.load(resp)["regions"]
    for (a, b), one_way in ONE_WAY_MS.items():
        got = regions.get(a, {}).get(b)
        if got is None or abs(got - 2 * one_way) > 0.2 * 2 * one_way:
            return False
    return True


def sentinel(node, **kw):
    return redis.Redis(host="127.0.0.1", port=node.sentinel_port, socket_timeout=5, decode_responses=True, **kw)


def answer(node, region):
    got = sentinel(node).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", region)
    return None if got is None else int(got[1])


def answers(nodes, region):
    return {answer(n, region) for n in nodes if n.proc.poll() is None}


def region_of(client):
    return client.info("replication")["region"]


def test_every_sentinel_names_each_regions_own_node_and_answers_like_sentinel(node_factory):
    nodes = start(node_factory)
    eu, us, ap = nodes
    for n in nodes:
        for m in nodes:
            assert answer(n, m.node_id.split("-")[0]) == m.port
        s = sentinel(n)
        # redis-py's own parsers of Sentinel's replies read these.
        masters = s.sentinel_masters()
        assert sorted(masters) == ["ap", "eu", "us"]
        for region, m in masters.items():
            assert m["is_master"] and not m["is_sdown"] and not m["is_odown"], m
            assert m["num-other-sentinels"] == 2 and m["num-slaves"] == 0
            assert m["port"] == {"eu": eu, "us": us, "ap": ap}[region].port
        assert s.sentinel_master("us")["port"] == us.port
        assert s.sentinel_slaves("eu") == []
        others = s.sentinel_sentinels("eu")
        assert sorted(o["port"] for o in others) == sorted(m.sentinel_port for m in nodes if m is not n)
        assert s.sentinel_get_master_addr_by_name("nowhere") is None
        with pytest.raises(redis.ResponseError, match="No such master"):
            s.sentinel_master("nowhere")
        for mutate in [("SET", "eu", "quorum", "2"), ("FAILOVER", "eu"), ("MONITOR", "x", "127.0.0.1", "1", "1"),
                       ("REMOVE", "eu"), ("RESET", "*")]:
            with pytest.raises(redis.ResponseError, match="read-only"):
                s.execute_command("SENTINEL", *mutate)
        assert s.execute_command("ROLE")[0] == "sentinel"
        info = s.info()
        assert info["sentinel_masters"] == 3 and info["master0"]["status"] == "ok"
        # The data port says master, as Sentinel's clients check.
        assert n.client().execute_command("ROLE")[0] == b"master"
        assert n.client().info("replication")["role"] == "master"
    # redis-py's Sentinel, unchanged, finds each region's node through any sentinel.
    for region in ["eu", "us", "ap"]:
        client = Sentinel([("127.0.0.1", n.sentinel_port) for n in nodes], socket_timeout=5).master_for(region)
        client.set(f"via-sentinel-{region}", region)
        assert region_of(client) == region


def test_a_region_with_several_nodes_is_answered_by_capacity_and_the_same_everywhere(node_factory):
    """Two eu nodes of capacity 3 and 0 beside us: eu's clients go to the capacity-3 node from
    every sentinel; a node of capacity 0 is never named."""
    nodes = []
    for region, node_id, capacity in [("eu", "eu-1", "0"), ("eu", "eu-2", "3"), ("us", "us-1", "1")]:
        join = ["--join", f"127.0.0.1:{nodes[0].peer_port}"] if nodes else []
        n = node_factory("--region", region, "--capacity", capacity, *join, name=node_id, node_id=node_id)
        n.sentinel_port = free_port()
        n.extra += ["--sentinel-addr", f"127.0.0.1:{n.sentinel_port}"]
        nodes.append(n.start())
    wait_for(lambda: all_ready(nodes), timeout=30, what="every node ready")
    assert answers(nodes, "eu") == {nodes[1].port}
    nodes[1].kill9()
    # eu-1 has capacity 0: eu's clients go to us rather than to it.
    wait_for(lambda: answers(nodes, "eu") == {nodes[2].port}, timeout=10, what="eu answered by us-1")


def write_until_acknowledged(client, key, value, deadline):
    """Writes through a Sentinel-managed client until a write is acknowledged; when."""
    while time.monotonic() < deadline:
        try:
            client.set(key, value)
            return time.monotonic()
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            time.sleep(0.02)
    raise AssertionError(f"no write acknowledged for {key}")


def test_a_killed_node_fails_over_to_the_nearest_region_and_gets_its_clients_back_once_caught_up(node_factory):
    nodes = start(node_factory)
    eu, us, ap = nodes
    switches = sentinel(ap).pubsub()
    switches.subscribe("+switch-master")
    assert switches.get_message(timeout=2)["type"] == "subscribe"
    client = Sentinel([("127.0.0.1", n.sentinel_port) for n in nodes], socket_timeout=2).master_for(
        "eu", socket_timeout=2)
    client.set("before", "1")
    assert region_of(client) == "eu"

    eu.kill9()
    killed = time.monotonic()
    acked = write_until_acknowledged(client, "during-0", "x", killed + 15)
    print(f"failover: next write acknowledged {acked - killed:.3f} s after the kill")
    assert acked - killed < 5
    assert region_of(client) == "us", "eu's nearest region is us"
    # Every sentinel names us within a view refresh or two (100 ms each).
    wait_for(lambda: answers(nodes, "eu") == {us.port}, timeout=2, what="every sentinel to name us")
    message = switches.get_message(timeout=5)
    assert message["type"] == "message" and message["channel"] == "+switch-master"
    assert message["data"] == f"eu 127.0.0.1 {eu.port} 127.0.0.1 {us.port}"

    # Writes while eu is away, then eu comes back: it is named again only once it holds them.
    # Enough that catching up takes a while (40 MB).
    value = "x" * 2000
    for first in range(1, 20000, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(first, first + 1000):
            pipe.set(f"during-{i}", value)
        pipe.execute()
    eu.start()
    back = wait_for(lambda: answer(us, "eu") == eu.port and time.monotonic(), timeout=30,
                    what="eu named again")
    direct = eu.client()
    held = sum(direct.exists(f"during-{i}") for i in range(0, 20000, 1000)) + direct.exists("during-19999")
    assert held == 21, f"named again holding {held} of 21 writes sampled from the 20000 made while it was away"
    print(f"eu named again {back - killed:.1f} s after the kill")
    wait_for(lambda: answers(nodes, "eu") == {eu.port}, timeout=5, what="every sentinel to name eu again")
    later = []
    while (message := switches.get_message(timeout=1)) is not None:
        later.append(message["data"])
    print(later, {n.node_id: n.port for n in nodes})
    assert later == [f"eu 127.0.0.1 {us.port} 127.0.0.1 {eu.port}"]


def test_a_drained_node_hands_its_clients_over_and_undrain_brings_them_back(node_factory):
    nodes = start(node_factory)
    eu, us, ap = nodes
    client = Sentinel([("127.0.0.1", n.sentinel_port) for n in nodes], socket_timeout=2).master_for(
        "eu", socket_timeout=2)
    client.set("k", "1")
    assert region_of(client) == "eu"
    admin = eu.client(decode_responses=True)
    assert admin.execute_command("MERIDIAN", "DRAIN") >= 1
    # Named nowhere any more, by any sentinel, including its own.
    assert answers(nodes, "eu") == {us.port}
    assert serving(eu)[0] == "draining"
    # The client's connection was closed: its next command reconnects through discovery.
    write_until_acknowledged(client, "k", "2", time.monotonic() + 5)
    assert region_of(client) == "us"
    # The admin's own connection stays; a drained node still serves who connects directly.
    assert admin.get("k") in (None, "1", "2")
    assert admin.execute_command("MERIDIAN", "UNDRAIN") == "OK"
    wait_for(lambda: answers(nodes, "eu") == {eu.port}, timeout=10, what="eu named again")
    # Draining is for admins.
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-@admin")
    app = eu.client(username="app", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.execute_command("MERIDIAN", "DRAIN")
    assert app.execute_command("MERIDIAN", "TOKEN").startswith(b"ct1:")


def test_sigterm_moves_discovery_before_it_closes_the_clients(node_factory):
    """A node shutting down tells its peers first: by the time its clients' connections close,
    the other sentinels already name another node, so they reconnect there at once."""
    nodes = start(node_factory)
    eu, us, ap = nodes
    switches = sentinel(us).pubsub()
    switches.subscribe("+switch-master")
    switches.get_message(timeout=2)
    blocked = eu.client(socket_timeout=30)
    closed = {}

    def wait_on_eu():
        try:
            blocked.blpop("never", timeout=20)
        except redis.ConnectionError:
            # What the other sentinels answer at the moment the connection closes.
            closed["answers"] = answers([us, ap], "eu")

    waiter = threading.Thread(target=wait_on_eu)
    waiter.start()
    time.sleep(0.3)
    eu.stop()
    waiter.join(timeout=10)
    assert closed.get("answers") == {us.port}, closed
    message = switches.get_message(timeout=5)
    assert message and message["data"].startswith(f"eu 127.0.0.1 {eu.port} ")


def test_sentinel_logins_follow_the_nodes_users_and_bad_input_is_refused(node_factory):
    nodes = start(node_factory, extra=("--requirepass", "s3cret"), regions=("eu", "us"))
    eu, us = nodes
    with pytest.raises(redis.AuthenticationError):
        sentinel(eu).execute_command("SENTINEL", "MASTERS")
    with pytest.raises(redis.AuthenticationError):
        sentinel(eu, password="wrong").execute_command("SENTINEL", "MASTERS")
    assert answer_with(eu, "eu", password="s3cret") == eu.port
    client = Sentinel([("127.0.0.1", n.sentinel_port) for n in nodes], sentinel_kwargs={"password": "s3cret"},
                      socket_timeout=5).master_for("us", password="s3cret")
    client.set("a", "1")
    assert region_of(client) == "us"
    # Garbage gets an error and the connection closes; others are served on.
    with socket.create_connection(("127.0.0.1", eu.sentinel_port), timeout=5) as raw:
        raw.sendall(b"*1\r\n$abc\r\n")
        assert raw.recv(1000).startswith(b"-ERR Protocol error")
        assert raw.recv(1000) == b""
    assert answer_with(eu, "us", password="s3cret") == us.port


def answer_with(node, region, **kw):
    got = sentinel(node, **kw).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", region)
    return int(got[1])


@pytest.fixture(scope="module")
def ioredis():
    if shutil.which("node") is None or not (JS / "node_modules" / "ioredis").exists():
        pytest.fail("ioredis is not installed: run `npm ci --prefix tests/js` (.ci/run does)")
    return JS / "sentinel_writer.js"


def test_ioredis_through_the_sentinels_fails_over_without_losing_an_acknowledged_write(node_factory, ioredis):
    nodes = start(node_factory)
    eu, us, ap = nodes
    sentinels = ",".join(f"127.0.0.1:{n.sentinel_port}" for n in nodes)
    writer = subprocess.Popen(["node", str(ioredis), sentinels, "us", "10"], stdout=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(writer.stdout))
    reader.start()
    wait_for(lambda: sum(line.startswith("ok") for line in lines) >= 20, timeout=10, what="ioredis writing")
    killed_ms = time.time() * 1000
    us.kill9()
    writer.wait(timeout=30)
    reader.join()
    oks = [line.split() for line in lines if line.startswith("ok")]
    before = [o for o in oks if int(o[2]) < killed_ms]
    after = [o for o in oks if int(o[2]) > killed_ms]
    assert before and after, lines[-5:]
    assert {int(o[3]) for o in before} == {us.port}
    assert {int(o[3]) for o in after[-10:]} == {eu.port}, "us's nearest region is eu"
    gap = (int(after[0][2]) - killed_ms) / 1000
    print(f"ioredis: next write acknowledged {gap:.3f} s after the kill")
    assert gap < 5
    # No acknowledged write is lost: once us is back (it holds what it acknowledged, fsynced
    # before the answer), every region holds every write ioredis saw acknowledged.
    us.start()
    for n in nodes:
        c = n.client()
        wait_for(lambda c=c: all(c.exists(f"ioredis:us:{o[1]}") for o in oks), timeout=20,
                 what=f"{n.node_id} to hold every acknowledged write")


def test_a_tls_sentinel_sends_tls_clients_to_tls_ports(node_factory, pki):
    """--sentinel-tls: between regions a sentinel login must not cross in clear. The sentinel
    listener speaks TLS with the node's client TLS files, and names each node's TLS port."""
    files = {"ssl_ca_certs": str(pki / "ca.crt"), "ssl_certfile": str(pki / "client.crt"),
             "ssl_keyfile": str(pki / "client.key")}
    tls_ports = {}
    nodes = []
    for region in ("eu", "us"):
        tls_ports[region] = free_port()
        join = ["--join", f"127.0.0.1:{nodes[0].peer_port}"] if nodes else []
        n = node_factory("--region", region, "--requirepass", "pw", "--tls-port", str(tls_ports[region]),
                         "--tls-cert-file", str(pki / "node.crt"), "--tls-key-file", str(pki / "node.key"),
                         "--tls-ca-cert-file", str(pki / "ca.crt"), "--sentinel-tls", *join,
                         name=f"{region}-1", node_id=f"{region}-1")
        n.sentinel_port = free_port()
        n.extra += ["--sentinel-addr", f"127.0.0.1:{n.sentinel_port}"]
        n.password = "pw"
        nodes.append(n.start())
    wait_for(lambda: all_ready(nodes), timeout=30, what="every node ready")
    sentinels = Sentinel([("127.0.0.1", n.sentinel_port) for n in nodes], socket_timeout=5,
                         sentinel_kwargs={"ssl": True, "password": "pw", **files})
    assert sentinels.discover_master("us") == ("127.0.0.1", tls_ports["us"])
    client = sentinels.master_for("us", ssl=True, password="pw", socket_timeout=5, **files)
    client.set("over-tls", "1")
    assert region_of(client) == "us"
    # In clear, the sentinel does not answer: the connection closes, or what comes back is a
    # TLS alert (redis-py reads its first byte as a bad reply type), whichever the client sees
    # first.
    with pytest.raises((redis.ConnectionError, redis.exceptions.InvalidResponse)):
        sentinel(nodes[0], password="pw").execute_command("SENTINEL", "MASTERS")
