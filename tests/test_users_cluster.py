"""Users are cluster-wide: ACL SETUSER, DELUSER and LOAD in one region apply in every region
(replicated through the change log; per user, the later change by HLC wins, and a delete is not
undone by an older concurrent change); clients of a deleted user and subscribers that lose a
channel are disconnected everywhere; the table's key is no client's to see."""

import socket
import time

import pytest
import redis

from test_replication import cluster, slow_cluster, start_cluster, wait_for  # noqa: F401

USERS_KEY = b"\xff\x00meridian.users"


def can_login(node, user, password):
    try:
        with node.client(username=user, password=password) as c:
            return c.ping()
    except redis.exceptions.NoPermissionError:
        return True  # logged in, and not allowed PING
    except redis.exceptions.AuthenticationError:
        return False


def acl_list(node):
    return sorted(node.client(decode_responses=True).execute_command("ACL", "LIST"))


def test_a_user_made_in_one_region_logs_in_everywhere_and_a_delete_reaches_every_region(cluster):
    eu, us, ap = cluster
    assert eu.client().execute_command("ACL", "SETUSER", "alice", "on", ">wonderland", "~cache:*", "+get",
                                       "+set") == b"OK"
    for n in (us, ap):
        wait_for(lambda n=n: can_login(n, "alice", "wonderland"), what=f"alice on {n.node_id}")
    assert acl_list(eu) == acl_list(us) == acl_list(ap)
    alice = ap.client(username="alice", password="wonderland")
    alice.set("cache:1", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        alice.set("other", "x")

    # Deleted in us: gone in every region, and alice's connection in ap is closed.
    assert us.client().execute_command("ACL", "DELUSER", "alice") == 1
    wait_for(lambda: not can_login(ap, "alice", "wonderland") and not can_login(eu, "alice", "wonderland"),
             what="alice deleted everywhere")

    def closed():
        try:
            alice.ping()
            return False
        except redis.exceptions.ConnectionError:
            return True

    wait_for(closed, what="alice's client in ap to be disconnected")
    assert acl_list(eu) == acl_list(us) == acl_list(ap)


def test_a_delete_is_not_undone_by_an_older_concurrent_change(slow_cluster):
    eu, us, ap = slow_cluster
    eu.client().execute_command("ACL", "SETUSER", "bob", "on", ">pw1", "+@all", "~*")
    wait_for(lambda: all(can_login(n, "bob", "pw1") for n in (us, ap)), timeout=10, what="bob everywhere")
    # Concurrent (a second of WAN delay each way): ap changes bob's password, then, a moment
    # later by the clock, eu deletes him. The delete is the later change: it wins everywhere.
    ap.client().execute_command("ACL", "SETUSER", "bob", ">pw2")
    time.sleep(0.05)
    eu.client().execute_command("ACL", "DELUSER", "bob")
    wait_for(lambda: all(acl_list(n) == acl_list(eu) for n in (us, ap)), timeout=10, what="the regions to agree")
    time.sleep(2.5)
    for n in (eu, us, ap):
        assert not can_login(n, "bob", "pw1") and not can_login(n, "bob", "pw2"), n.node_id
        assert not any(line.startswith("user bob ") for line in acl_list(n))


def test_a_subscriber_that_loses_its_channel_is_disconnected_in_every_region(cluster):
    eu, us, ap = cluster
    eu.client().execute_command("ACL", "SETUSER", "carol", "on", ">pw", "+@all", "~*", "resetchannels", "&news")
    wait_for(lambda: can_login(ap, "carol", "pw"), what="carol in ap")
    # A raw connection, so the test sees the node close it (redis-py would reconnect).
    listener = socket.create_connection(("127.0.0.1", ap.port), timeout=10)
    listener.sendall(b"AUTH carol pw\r\nSUBSCRIBE news\r\n")
    time.sleep(0.3)
    assert b"subscribe" in listener.recv(4096)
    other = ap.client(username="carol", password="pw")  # not subscribed: stays
    us.client().execute_command("ACL", "SETUSER", "carol", "resetchannels", "&sports")
    listener.settimeout(10)
    assert listener.recv(4096) == b"", "the subscriber is disconnected"
    assert other.ping()


def test_the_users_table_is_hidden_from_clients_and_survives_flushall_and_restarts(node_factory):
    eu, us = start_cluster(node_factory)[:2]
    c = eu.client()
    c.execute_command("ACL", "SETUSER", "dave", "on", ">pw", "+@all", "~*")
    c.set("k", "v")
    assert c.dbsize() == 1
    assert c.keys("*") == [b"k"]
    assert c.scan(0, count=1000)[1] == [b"k"]
    assert c.randomkey() == b"k"
    assert c.info("keyspace")["db0"]["keys"] == 1
    for call in (("GET", USERS_KEY), ("HGETALL", USERS_KEY), ("DEL", USERS_KEY), ("RENAME", USERS_KEY, "x"),
                 ("OBJECT", "ENCODING", USERS_KEY)):
        with pytest.raises(redis.exceptions.ResponseError, match="reserved"):
            c.execute_command(*call)
    assert c.sort("nosuchlist", by=USERS_KEY + b"->*") == []
    c.flushall()
    assert c.dbsize() == 0
    wait_for(lambda: can_login(us, "dave", "pw"), what="dave in us after the flush")
    assert can_login(eu, "dave", "pw")
    eu.stop()
    eu.start()
    assert can_login(eu, "dave", "pw")
