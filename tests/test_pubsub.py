"""PUBLISH, SUBSCRIBE, PSUBSCRIBE and UNSUBSCRIBE on one node, RESP2 and RESP3."""

import time


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
