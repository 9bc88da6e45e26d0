"""PUBLISH, SUBSCRIBE, PSUBSCRIBE and UNSUBSCRIBE on one node, RESP2 and RESP3."""

import time

import pytest
import redis


def wait_message(p, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if m:
            return m
    raise AssertionError("no message")


def test_publish_reaches_channel_and_pattern_subscribers(node):
    pub = node.client(decode_responses=True)
    sub = node.client(decode_responses=True).pubsub()
    sub.subscribe("news")
    psub = node.client(decode_responses=True).pubsub()
    psub.psubscribe("sensor.*")
    time.sleep(0.1)
    assert pub.publish("news", "hello") == 1
    assert pub.publish("sensor.7", "21.5") == 1
    assert pub.publish("nobody", "x") == 0
    m = wait_message(sub)
    assert (m["type"], m["channel"], m["data"]) == ("message", "news", "hello")
    m = wait_message(psub)
    assert (m["type"], m["pattern"], m["channel"], m["data"]) == ("pmessage", "sensor.*", "sensor.7", "21.5")
    sub.unsubscribe("news")
    time.sleep(0.1)
    assert pub.publish("news", "again") == 0


def test_resp3_push_messages(node):
    pub = node.client()
    sub = node.client(protocol=3).pubsub()
    sub.subscribe("c3")
    time.sleep(0.1)
    assert pub.publish("c3", "x") == 1
    m = wait_message(sub)
    assert m["data"] == b"x"


def test_pubsub_introspection_and_shard_channels(node):
    pub = node.client(decode_responses=True)
    a = node.client(decode_responses=True).pubsub()
    a.subscribe("news", "weather")
    a.psubscribe("sensor.*", "x*")
    b = node.client(decode_responses=True).pubsub()
    b.subscribe("news")
    b.psubscribe("x*")
    s = node.client(decode_responses=True).pubsub()
    s.ssubscribe("orders")
    time.sleep(0.2)
    assert pub.pubsub_channels() == ["news", "weather"]
    assert pub.pubsub_channels("w*") == ["weather"]
    assert pub.pubsub_numsub("news", "weather", "none") == [("news", 2), ("weather", 1), ("none", 0)]
    assert pub.pubsub_numpat() == 2
    assert pub.execute_command("PUBSUB SHARDCHANNELS") == ["orders"]
    assert pub.execute_command("PUBSUB", "SHARDNUMSUB", "orders") == ["orders", 1]
    # Shard channels are a namespace of their own.
    assert pub.publish("orders", "x") == 0
    assert pub.spublish("orders", "o-1") == 1
    m = wait_message(s)
    assert (m["type"], m["channel"], m["data"]) == ("smessage", "orders", "o-1")


def test_keyspace_notifications_name_what_each_command_did(node):
    r = node.client(decode_responses=True)
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": ""}
    r.config_set("notify-keyspace-events", "KEA")
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
    p = node.client(decode_responses=True).pubsub()
    p.psubscribe("__key*__:*")
    time.sleep(0.2)
    r.set("k", "v", ex=100)
    r.rpush("q", "a")
    r.rpop("q")
    r.rename("k", "k2")
    events = []
    while len(events) < 14:
        m = wait_message(p)
        events.append((m["channel"], m["data"]))
    assert events == [
        ("__keyspace@0__:k", "set"), ("__keyevent@0__:set", "k"),
        ("__keyspace@0__:k", "expire"), ("__keyevent@0__:expire", "k"),
        ("__keyspace@0__:q", "rpush"), ("__keyevent@0__:rpush", "q"),
        ("__keyspace@0__:q", "rpop"), ("__keyevent@0__:rpop", "q"),
        ("__keyspace@0__:q", "del"), ("__keyevent@0__:del", "q"),
        ("__keyspace@0__:k", "rename_from"), ("__keyevent@0__:rename_from", "k"),
        ("__keyspace@0__:k2", "rename_to"), ("__keyevent@0__:rename_to", "k2"),
    ]
    r.flushall()
    assert p.get_message(timeout=0.3) is None, "a flush names no key, as in Redis"
    assert "Invalid event class" in str(pytest.raises(redis.exceptions.ResponseError, r.config_set,
                                                      "notify-keyspace-events", "Kq").value)
    r.config_set("notify-keyspace-events", "")
    r.set("quiet", "1")
    time.sleep(0.2)
    assert p.get_message(timeout=0.3) is None, "no events once they are off"
