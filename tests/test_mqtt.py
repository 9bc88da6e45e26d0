"""Devices write readings over MQTT (issue 16): Debian's mosquitto_pub and paho-mqtt, over
MQTT 3.1.1 and 5, into series read back with redis-py's r.ts(), on one node and across three
regions. A QoS 1 message is acknowledged once stored; bad payloads, topics and logins are
refused as each protocol version can say it, and change nothing."""

import json
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from conftest import free_port
from test_replication import start_cluster, wait_for


@pytest.fixture
def mqtt_node(node_factory):
    port = free_port()
    n = node_factory("--mqtt-addr", f"127.0.0.1:{port}").start()
    n.mqtt_port = port
    return n


def pub(node, topic, payload, *extra, version="mqttv311", qos=1, check=True):
    return subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(node.mqtt_port), "-V", version,
         "-q", str(qos), "-t", topic, "-m", payload, *extra],
        capture_output=True, text=True, timeout=20, check=check)


def samples(node, key):
    return [tuple(s) for s in node.client().ts().range(key, "-", "+")]


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_stores_readings_with_labels(mqtt_node, version):
    pub(mqtt_node, "sensors/plant/dev1/temp", json.dumps({"ts": 1000, "value": 21.5}), version=version)
    pub(mqtt_node, "sensors/plant/dev1/temp", json.dumps([{"ts": 2000, "value": 22},
                                                          {"ts": 3000, "value": 23}]), version=version)
    pub(mqtt_node, "sensors/plant/dev1/temp", "24.5", version=version, qos=0)
    ts = mqtt_node.client().ts()
    got = wait_for(lambda: (s := samples(mqtt_node, "sensors:plant:dev1:temp")) and len(s) == 4 and s,
                   what="four readings")
    assert got[:3] == [(1000, 21.5), (2000, 22.0), (3000, 23.0)]
    assert got[3][1] == 24.5 and abs(got[3][0] / 1000 - time.time()) < 60
    assert ts.info("sensors:plant:dev1:temp").labels == {"group": "plant", "device": "dev1", "metric": "temp"}
    # A message delivered twice stores one sample.
    pub(mqtt_node, "sensors/plant/dev1/temp", json.dumps({"ts": 1000, "value": 21.5}), version=version)
    assert samples(mqtt_node, "sensors:plant:dev1:temp")[:3] == got[:3]


def paho_client(node, version, **login):
    protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{version}", protocol=protocol)
    if login:
        c.username_pw_set(login["user"], login["password"])
    acks = {}
    connected = {}
    c.on_connect = lambda cl, ud, flags, reason, props: connected.update(reason=reason)
    c.on_publish = lambda cl, ud, mid, reason, props: acks.update({mid: reason})
    c.connect("127.0.0.1", node.mqtt_port, keepalive=30)
    c.loop_start()
    wait_for(lambda: "reason" in connected, what="CONNACK")
    return c, acks, connected["reason"]


@pytest.mark.parametrize("version", [4, 5])
def test_paho_qos1_is_acknowledged_once_stored_and_bad_payloads_are_refused(mqtt_node, version):
    c, acks, reason = paho_client(mqtt_node, version)
    assert not reason.is_failure
    ok = c.publish("sensors/lab/d2/hum", json.dumps({"ts": 5000, "value": 40}), qos=1)
    bad = c.publish("sensors/lab/d2/hum", "warm", qos=1)
    bad_topic = c.publish("sensors//d2/hum", "1", qos=1)
    wait_for(lambda: {ok.mid, bad.mid, bad_topic.mid} <= set(acks), what="three PUBACKs")
    # Acknowledged means stored: readable at once.
    assert samples(mqtt_node, "sensors:lab:d2:hum") == [(5000, 40.0)]
    if version == 5:
        assert not acks[ok.mid].is_failure
        assert acks[bad.mid].value == 0x99  # payload format invalid
        assert acks[bad_topic.mid].value == 0x90  # topic name invalid
    c.loop_stop()
    c.disconnect()
    assert mqtt_node.client().keys("*") == [b"sensors:lab:d2:hum"]


def test_many_readings_from_paho_all_land(mqtt_node):
    c, acks, _ = paho_client(mqtt_node, 5)
    infos = [c.publish("sensors/bulk/d/x", json.dumps({"ts": i, "value": i}), qos=1) for i in range(2000)]
    wait_for(lambda: len(acks) == 2000, timeout=30, what="2000 PUBACKs")
    assert all(not acks[i.mid].is_failure for i in infos)
    assert len(samples(mqtt_node, "sensors:bulk:d:x")) == 2000
    c.loop_stop()
    c.disconnect()


def test_logins_are_checked_against_the_node_s_users(node_factory):
    port = free_port()
    n = node_factory("--mqtt-addr", f"127.0.0.1:{port}", "--requirepass", "s3cret").start()
    n.mqtt_port = port
    denied = pub(n, "sensors/a/b/c", "1", check=False)
    assert denied.returncode != 0
    wrong = pub(n, "sensors/a/b/c", "1", "-u", "default", "-P", "nope", check=False)
    assert wrong.returncode != 0 and "bad user name or password" in (wrong.stderr + wrong.stdout).lower()
    pub(n, "sensors/a/b/c", json.dumps({"ts": 1, "value": 1}), "-u", "default", "-P", "s3cret")
    r = redis.Redis(port=n.port, password="s3cret")
    assert [tuple(s) for s in r.ts().range("sensors:a:b:c", "-", "+")] == [(1, 1.0)]
    # A user who may not write that key is refused the message (MQTT 5 says so).
    r.acl_setuser("dev", enabled=True, passwords=["+pw"], commands=["+@all"], keys=["sensors:ok:*"])
    pub(n, "sensors/ok/d/t", json.dumps({"ts": 1, "value": 1}), "-u", "dev", "-P", "pw", version="mqttv5")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev", protocol=mqtt.MQTTv5)
    c.username_pw_set("dev", "pw")
    acks = {}
    c.on_publish = lambda cl, ud, mid, reason, props: acks.update({mid: reason})
    c.connect("127.0.0.1", port)
    c.loop_start()
    m = c.publish("sensors/other/d/t", "1", qos=1)
    wait_for(lambda: m.mid in acks, what="a PUBACK")
    assert acks[m.mid].value == 0x87  # not authorized
    c.loop_stop()
    assert r.exists("sensors:ok:d:t") and not r.exists("sensors:other:d:t")


def test_garbage_and_silence_close_only_their_connection(mqtt_node):
    import socket
    s = socket.create_connection(("127.0.0.1", mqtt_node.mqtt_port))
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    s.settimeout(5)
    assert s.recv(100) == b""  # closed
    s.close()
    pub(mqtt_node, "sensors/still/up/ok", json.dumps({"ts": 1, "value": 1}))
    assert samples(mqtt_node, "sensors:still:up:ok") == [(1, 1.0)]


def test_readings_from_every_region_fuse_the_same_everywhere(node_factory):
    ports = [free_port() for _ in range(3)]
    it = iter(ports)
    nodes = start_cluster(lambda *a, **kw: node_factory(*a, "--mqtt-addr", f"127.0.0.1:{next(it)}", **kw))
    for n, p in zip(nodes, ports):
        n.mqtt_port = p
    nodes[0].client().execute_command("TS.FUSE", "plant:median", "AGGREGATION", "avg", "1000",
                                      "REDUCE", "median", "FILTER", "group=plant")
    for i, n in enumerate(nodes):
        batch = [{"ts": t, "value": 10 * i + t / 1000} for t in range(0, 3000, 250)]
        pub(n, f"sensors/plant/dev{i}/temp", json.dumps(batch))

    def view(n):
        return [tuple(s) for s in n.client().ts().range("plant:median", "-", "+")]

    want = [(b, 10 + b / 1000 + 0.375) for b in range(0, 3000, 1000)]
    for n in nodes:
        wait_for(lambda n=n: view(n) == want, what=f"{n.node_id}'s fused series")
