"""Every command of the design, through redis-py, with Redis 7.0's replies and errors."""

import threading
import time

import pytest
import redis

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def err(r, *args) -> str:
    with pytest.raises((redis.exceptions.ResponseError, redis.exceptions.AuthenticationError)) as e:
        r.execute_command(*args)
    return str(e.value)


def test_connection_commands(r):
    assert r.ping() is True
    assert r.echo("hi") == "hi"
    assert r.execute_command("SELECT", 0) in (True, "OK")
    assert err(r, "SELECT", 1) == "DB index is out of range"
    assert err(r, "SELECT", "x") == "value is not an integer or out of range"
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"
    assert isinstance(r.client_id(), int)
    assert "Client names cannot contain spaces" in err(r, "CLIENT", "SETNAME", "a b")
    secs, micros = r.time()
    assert abs(secs - time.time()) < 5 and 0 <= micros < 1_000_000
    assert r.config_get("save") == {"save": ""}
    assert "appendonly" in r.config_get("append*")
    assert "not supported here" in err(r, "CONFIG", "SET", "maxmemory", "100mb")
    assert r.info("stats")["total_commands_processed"] > 0 and r.info("memory")["used_memory"] > 0
    assert "called without any password configured" in err(r, "AUTH", "pw")
    assert r.execute_command("AUTH", "default", "anything") in (True, "OK")
    assert r.command_count() > 40
    info = r.info()
    assert info["redis_version"] == "7.0.15"
    assert info["arch_bits"] == 64 and info["os"].startswith("Linux ")
    assert r.info("replication")["role"] == "master"
    assert r.execute_command("WAIT", 1, 100) == 1
    assert "unknown command 'NOPE'" in err(r, "NOPE", "a")
    assert err(r, "GET") == "wrong number of arguments for 'get' command"


def test_keyspace_hits_and_misses_count_read_lookups(r):
    r.config_resetstat()
    stats = r.info("stats")
    assert (stats["keyspace_hits"], stats["keyspace_misses"]) == (0, 0)
    r.set("here", 1)  # a write: not a lookup
    r.sadd("s", "m")
    r.get("here")
    r.get("gone")
    r.mget("here", "gone", "s")  # three lookups: found, missed, found (of another type)
    r.smembers("s")
    stats = r.info("stats")
    assert (stats["keyspace_hits"], stats["keyspace_misses"]) == (4, 2)
    r.config_resetstat()
    assert r.info("stats")["keyspace_hits"] == 0


def test_hello_switches_protocol(node):
    c = node.client(protocol=3, decode_responses=True)
    hello = c.execute_command("HELLO", 3)
    assert hello["proto"] == 3 and hello["server"] == "meridian"
    c.hset("h", mapping={"a": "1"})
    assert c.hgetall("h") == {"a": "1"}
    assert c.get("missing") is None
    assert "NOPROTO" in str(pytest.raises(redis.exceptions.ResponseError, c.execute_command, "HELLO", 4).value)


def test_strings(r):
    assert r.set("k", "v") is True
    assert r.get("k") == "v"
    assert r.get("nope") is None
    assert r.set("k", "w", nx=True) is None
    assert r.set("new", "1", xx=True) is None
    assert r.set("k", "w", xx=True) is True
    assert r.set("k", "x", get=True) == "w"
    assert r.set("fresh", "x", get=True) is None
    assert err(r, "SET", "k", "v", "NX", "XX") == "syntax error"
    assert err(r, "SET", "k", "v", "EX", "0") == "invalid expire time in 'set' command"
    assert err(r, "SET", "k", "v", "EX", "abc") == "value is not an integer or out of range"
    assert err(r, "SET", "k", "v", "EX", "10", "PX", "10") == "syntax error"
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "missing") == ["1", "2", None]
    assert err(r, "MSET", "a", "1", "b") == "wrong number of arguments for 'mset' command"
    assert r.getdel("a") == "1"
    assert r.get("a") is None
    assert r.getdel("a") is None
    assert r.strlen("b") == 1 and r.strlen("missing") == 0
    assert r.append("b", "345") == 4
    assert r.get("b") == "2345"
    assert r.append("c", "x") == 1
    r.sadd("s", "m")
    assert err(r, "GET", "s") == WRONGTYPE
    assert err(r, "APPEND", "s", "x") == WRONGTYPE
    assert err(r, "SET", "s", "x", "GET") == WRONGTYPE
    assert r.mget("s") == [None]
    assert r.set("s", "now a string") is True
    assert r.type("s") == "string"


def test_counters(r):
    assert r.incr("n") == 1
    assert r.incrby("n", 41) == 42
    assert r.decr("n") == 41
    assert r.decrby("n", 40) == 1
    assert r.get("n") == "1"
    r.set("n", "100")
    assert r.incr("n") == 101
    r.set("big", str(2**63 - 1))
    assert err(r, "INCR", "big") == "increment or decrement would overflow"
    assert r.get("big") == str(2**63 - 1)
    r.set("word", "abc")
    assert err(r, "INCR", "word") == "value is not an integer or out of range"
    assert err(r, "INCRBY", "n", "1.5") == "value is not an integer or out of range"
    assert err(r, "DECRBY", "n", str(-(2**63))) == "decrement would overflow"
    r.set("sp", " 1")
    assert err(r, "INCR", "sp") == "value is not an integer or out of range"
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == "10.6"
    r.set("f2", "5.0e3")
    assert r.incrbyfloat("f2", 200) == 5200
    assert err(r, "INCRBYFLOAT", "word", "1") == "value is not a valid float"
    assert err(r, "INCRBYFLOAT", "f", "x") == "value is not a valid float"
    r.sadd("s", "x")
    assert err(r, "INCR", "s") == WRONGTYPE


def test_keys_and_expiry(r):
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.exists("a", "b", "a", "zz") == 3
    assert r.delete("a", "zz") == 1
    assert r.unlink("b") == 1
    assert r.type("c") == "string" and r.type("zz") == "none"
    assert r.ttl("c") == -1 and r.ttl("zz") == -2
    assert r.pttl("zz") == -2
    assert r.expire("c", 100) is True
    assert 99 <= r.ttl("c") <= 100
    assert 99_000 <= r.pttl("c") <= 100_000
    assert r.expire("c", 50, nx=True) is False
    assert r.expire("c", 50, gt=True) is False
    assert r.expire("c", 200, gt=True) is True
    assert r.expire("c", 10, lt=True) is True
    assert r.expire("zz", 10) is False
    assert "not compatible" in err(r, "EXPIRE", "c", "10", "NX", "XX")
    assert r.persist("c") is True and r.ttl("c") == -1
    assert r.persist("c") is False
    assert r.pexpire("c", 100) is True
    time.sleep(0.25)
    assert r.get("c") is None and r.exists("c") == 0
    r.set("d", "x", px=1)
    time.sleep(0.05)
    assert r.get("d") is None
    r.set("e", "x")
    assert r.expire("e", -1) is True
    assert r.exists("e") == 0
    r.set("keep", "v", ex=100)
    r.set("keep", "w", keepttl=True)
    assert r.ttl("keep") > 90
    r.set("keep", "z")
    assert r.ttl("keep") == -1
    r.incr("ctr")
    r.expire("ctr", 100)
    r.incr("ctr")
    assert r.ttl("ctr") > 90


def test_expired_keys_are_reclaimed_and_recreated_fresh(r):
    r.set("gone", "v", px=50)
    r.sadd("gone-set", "a")
    r.pexpire("gone-set", 50)
    time.sleep(0.5)
    assert r.dbsize() == 0
    # A write to an expired key starts a fresh key: no old members, no old deadline.
    assert r.sadd("gone-set", "b") == 1
    assert r.smembers("gone-set") == {"b"}
    assert r.ttl("gone-set") == -1


def test_keys_scan_dbsize(r):
    for i in range(250):
        r.set(f"user:{i}", i)
    r.hset("hash:1", "f", "v")
    r.sadd("set:1", "m")
    assert r.dbsize() == 252
    assert sorted(r.keys("user:1?")) == [f"user:{i}" for i in range(10, 20)]
    assert r.keys("hash:*") == ["hash:1"]
    assert set(r.scan_iter(count=17)) == set(r.keys("*"))
    assert len(set(r.scan_iter(count=17))) == 252
    assert set(r.scan_iter(match="user:24*")) == {"user:24"} | {f"user:24{i}" for i in range(10)}
    assert list(r.scan_iter(_type="set")) == ["set:1"]
    assert err(r, "SCAN", "abc") == "invalid cursor"
    r.delete("user:0")
    assert r.dbsize() == 251


def test_hashes(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "3") == 0
    assert r.hget("h", "a") == "3"
    assert r.hget("h", "zz") is None and r.hget("nohash", "a") is None
    assert r.hmget("h", ["a", "zz", "b"]) == ["3", None, "2"]
    assert r.hgetall("h") == {"a": "3", "b": "2"}
    assert r.hgetall("nohash") == {}
    assert r.hlen("h") == 2
    assert r.hexists("h", "a") is True and r.hexists("h", "zz") is False
    assert sorted(r.hkeys("h")) == ["a", "b"]
    assert sorted(r.hvals("h")) == ["2", "3"]
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -7) == -2
    assert err(r, "HINCRBY", "h", "a", "x") == "value is not an integer or out of range"
    r.hset("h", "s", "text")
    assert err(r, "HINCRBY", "h", "s", "1") == "hash value is not an integer"
    assert r.hdel("h", "a", "zz", "a") == 1
    assert r.hlen("h") == 3
    assert r.hdel("h", "b", "n", "s") == 3
    assert r.exists("h") == 0
    assert err(r, "HSET", "h", "a") == "wrong number of arguments for 'hset' command"
    assert r.execute_command("HMSET", "h2", "x", "1") in (True, "OK")
    r.set("str", "v")
    assert err(r, "HSET", "str", "a", "1") == WRONGTYPE
    assert err(r, "HGETALL", "str") == WRONGTYPE


def test_sets(r):
    assert r.sadd("s", "a", "b", "a") == 2
    assert r.sadd("s", "b", "c") == 1
    assert r.smembers("s") == {"a", "b", "c"}
    assert r.smembers("nos") == set()
    assert r.sismember("s", "a") is True or r.sismember("s", "a") == 1
    assert r.sismember("s", "zz") in (False, 0)
    assert r.scard("s") == 3 and r.scard("nos") == 0
    assert r.srem("s", "a", "zz") == 1
    assert r.srem("nos", "a") == 0
    assert r.srem("s", "b", "c") == 2
    assert r.exists("s") == 0
    r.set("str", "v")
    assert err(r, "SADD", "str", "a") == WRONGTYPE
    assert err(r, "SMEMBERS", "str") == WRONGTYPE


def test_random_picks_spread_over_large_collections_and_the_keyspace(r):
    """Past 512 parts a pick reads a window after a random name (cmd/random.rs): names that
    share a prefix must still all be reachable, and the answers must be real parts."""
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.hset("h", f"field:{i}", i)
        p.zadd("z", {f"member:{i}": i})
        p.sadd("s", f"member:{i}")
        p.set(f"key:{i}", i)
    p.execute()
    fields = {r.hrandfield("h") for _ in range(100)}
    assert len(fields) > 50 and all(r.hexists("h", f) for f in fields)
    pairs = r.hrandfield("h", -5, withvalues=True)
    assert len(pairs) == 10
    for field, value in zip(pairs[::2], pairs[1::2]):
        assert value == field.split(":")[1]
    pairs = r.zrandmember("z", 5, withscores=True)
    assert len(pairs) == 10
    for member, score in zip(pairs[::2], pairs[1::2]):
        assert float(score) == int(member.split(":")[1])
    members = r.srandmember("s", 10)
    assert len(set(members)) == 10 and all(r.sismember("s", m) for m in members)
    assert len(r.srandmember("s", -3000)) == 3000
    keys = {r.randomkey() for _ in range(100)}
    assert len(keys) > 50 and r.exists(*keys) == len(keys)
    popped = r.spop("s", 1500)
    assert len(set(popped)) == 1500 and r.scard("s") == 500
    assert not any(r.smismember("s", popped))


def test_pipelining_keeps_order(r):
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.incr("p")
        p.get("p")
        p.ping()
    out = p.execute()
    assert out[0::3] == list(range(1, 501))
    assert out[1::3] == [str(i) for i in range(1, 501)]
    assert all(x is True for x in out[2::3])


def test_binary_safe_values(node):
    c = node.client()
    value = bytes(range(256)) * 4 + b"\r\n\x00"
    c.set(b"bin\x00key", value)
    assert c.get(b"bin\x00key") == value


def test_large_hash_and_set(r):
    """Fields and members are stored one by one: large collections work field by field."""
    p = r.pipeline(transaction=False)
    for i in range(5000):
        p.hset("big", f"f{i}", i)
        p.sadd("bigset", f"m{i}")
    p.execute()
    assert r.hlen("big") == 5000 and r.scard("bigset") == 5000
    assert r.hget("big", "f4321") == "4321"
    assert len(r.hgetall("big")) == 5000
    assert r.sismember("bigset", "m4999")
    assert r.hdel("big", "f0", "f1") == 2 and r.hlen("big") == 4998
    assert r.srem("bigset", "m0") == 1 and r.scard("bigset") == 4999
    # SET replaces the hash: its fields must not come back with a later HSET.
    assert r.set("big", "now a string")
    assert r.delete("big") == 1
    assert r.hset("big", "new", "1") == 1
    assert r.hgetall("big") == {"new": "1"}
    assert r.delete("bigset") == 1
    assert r.sadd("bigset", "only") == 1
    assert r.smembers("bigset") == {"only"}
    assert r.dbsize() == 2


def test_blocking_pops_wait_time_out_and_leave_with_their_client(node):
    c = node.client()
    started = time.monotonic()
    assert c.blpop(["nothing"], timeout=0.3) is None
    assert time.monotonic() - started >= 0.29
    # A client blocked for ever that goes away takes nothing afterwards.
    ghost = node.client(single_connection_client=True)
    ghost.connection.send_command("BLPOP", "work", "0")
    time.sleep(0.2)
    ghost.close()
    time.sleep(0.2)
    c.rpush("work", "kept")
    time.sleep(0.3)
    assert c.lrange("work", 0, -1) == [b"kept"]
    # Clients blocked on one list each get one element; the others keep waiting.
    results = []

    def block():
        results.append(node.client().brpop(["shared"], timeout=10))

    import threading
    threads = [threading.Thread(target=block) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    c.rpush("shared", "a", "b")
    time.sleep(0.5)
    assert sorted(r[1] for r in results) == [b"a", b"b"]
    c.rpush("shared", "c")
    for t in threads:
        t.join(timeout=10)
    assert sorted(r[1] for r in results) == [b"a", b"b", b"c"]


def test_a_long_list_is_read_from_the_nearer_end(r):
    r.rpush("long", *[str(i) for i in range(5000)])
    assert r.llen("long") == 5000
    assert r.lindex("long", 4998) == "4998"
    assert r.lrange("long", -3, -1) == ["4997", "4998", "4999"]
    assert r.lrange("long", 1023, 1025) == ["1023", "1024", "1025"]
    r.ltrim("long", 10, -11)
    assert r.llen("long") == 4980 and r.lindex("long", 0) == "10" and r.lindex("long", -1) == "4989"
    assert r.lpop("long", 3) == ["10", "11", "12"]
    assert r.linsert("long", "AFTER", "2000", "x") == 4978
    assert r.lrange("long", 1987, 1989) == ["2000", "x", "2001"]


def test_client_list_kill_and_reply(node):
    a = node.client(single_connection_client=True)
    b = node.client(single_connection_client=True)
    a.client_setname("alpha")
    b.client_setname("beta")
    # The name shows at once, before b sends anything else.
    listed = a.client_list()
    names = {c["name"] for c in listed}
    assert {"alpha", "beta"} <= names
    b_id = b.client_id()
    mine = a.client_info()
    assert mine["name"] == "alpha" and mine["cmd"] == "client|info"
    assert a.execute_command("CLIENT", "KILL", "ID", str(b_id)) == 1
    time.sleep(0.2)
    assert b_id not in {int(c["id"]) for c in a.client_list()}, "the killed connection is closed"
    assert a.execute_command("CLIENT", "KILL", "ID", str(b_id)) == 0
    assert "No such client" in err(a, "CLIENT", "KILL", "127.0.0.1:1")
    # CLIENT REPLY OFF: commands run, nothing answers, until ON.
    import socket
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(b"CLIENT REPLY OFF\r\nSET quiet 1\r\nCLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nGET quiet\r\n")
        time.sleep(0.3)
        got = s.recv(1024)
        # As in Redis: SKIP means nothing while replies are off, ON is answered.
        assert got == b"+OK\r\n$1\r\n1\r\n", got


def test_monitor_shows_every_command_in_order_and_hides_passwords(node):
    r = node.client()
    other = node.client(single_connection_client=True)
    other.ping()  # its handshake (HELLO, CLIENT SETINFO) before the monitor starts
    with r.monitor() as m:
        other.set("greeting", 'say "hi"\n')
        other.get("greeting")
        other.execute_command("MULTI")
        other.execute_command("INCR", "n")
        other.execute_command("LPUSH", "l", "x")
        other.execute_command("EXEC")
        assert "invalid username-password pair" in err(other, "AUTH", "someone", "secret")
        seen = [m.next_command()["command"] for _ in range(7)]
    assert seen == [
        'SET greeting say "hi"\\n',  # redis-py reads the quotes back, not the escapes
        "GET greeting",
        "MULTI",
        "INCR n",
        "LPUSH l x",
        "exec",
        "AUTH (redacted) (redacted)",
    ], seen
    # Queued commands show when EXEC runs them, after anything sent meanwhile.
    assert node.client().client_info()["flags"] == "N"


def test_command_getkeys_finds_keys_where_redis_does(r):
    # "COMMAND GETKEYS" as one word: redis-py then does not parse the reply as COMMAND's.
    assert r.execute_command("COMMAND GETKEYS", "GET", "k") == ["k"]
    assert r.execute_command("COMMAND GETKEYS", "MSET", "a", "1", "b", "2") == ["a", "b"]
    assert r.execute_command("COMMAND GETKEYS", "ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2") == [
        "d", "a", "b"]
    assert r.execute_command("COMMAND GETKEYS", "SORT", "k", "BY", "w", "STORE", "dest") == ["k", "dest"]
    assert r.execute_command("COMMAND GETKEYS", "BLMPOP", "0", "2", "a", "b", "LEFT") == ["a", "b"]
    assert err(r, "COMMAND GETKEYS", "PING") == "The command has no key arguments"
    assert err(r, "COMMAND GETKEYS", "NOPE", "k") == "Invalid command specified"
    assert err(r, "COMMAND GETKEYS", "GET") == "Invalid number of arguments specified for command"
    assert err(r, "COMMAND GETKEYS", "ZUNIONSTORE", "d", "5", "a") == "Invalid arguments specified for command"
    info = r.execute_command("COMMAND INFO", "ZUNIONSTORE", "LMOVE")
    flags = [set(i[2]) for i in info]
    assert "movablekeys" in flags[0] and "movablekeys" not in flags[1]
    assert info[1][3:6] == [1, 2, 1]
    # Redis 7.0's key specs: what each command does to each of its keys, and where they are.
    src, dst = info[1][8]
    assert set(src["flags"]) == {"RW", "access", "delete"} and set(dst["flags"]) == {"RW", "insert"}
    assert dst["begin_search"] == {"type": "index", "spec": {"index": 2}}
    assert dst["find_keys"] == {"type": "range", "spec": {"lastkey": 0, "keystep": 1, "limit": 0}}
    assert info[0][8][1]["find_keys"]["type"] == "keynum"
    flags = r.execute_command("COMMAND GETKEYSANDFLAGS", "LMOVE", "a", "b", "LEFT", "RIGHT")
    assert [(k, set(f)) for k, f in flags] == [("a", {"RW", "access", "delete"}), ("b", {"RW", "insert"})]
    assert [set(f) for _, f in r.execute_command("COMMAND GETKEYSANDFLAGS", "SET", "k", "v")] == [{"OW", "update"}]
    assert r.execute_command("COMMAND LIST", "FILTERBY", "PATTERN", "zunion*") == ["zunion", "zunionstore"]
    blocking = r.execute_command("COMMAND LIST", "FILTERBY", "ACLCAT", "blocking")
    assert "blpop" in blocking and "lpop" not in blocking
    assert set(r.execute_command("COMMAND INFO", "GET")[0][6]) == {"@read", "@string", "@fast"}
    assert "syntax error" in err(r, "COMMAND LIST", "FILTERBY", "nope", "x")


def test_slowlog_and_latency_record_what_ran_long(node):
    r = node.client(decode_responses=True)
    r.client_setname("reporter")
    assert r.config_get("slowlog-*") == {"slowlog-log-slower-than": "10000", "slowlog-max-len": "128"}
    assert r.execute_command("LATENCY", "LATEST") == []
    r.config_set("slowlog-log-slower-than", 0)  # every command
    r.slowlog_reset()
    r.set("k", "v")
    r.get("k")  # a read, run on the connection
    with r.pipeline(transaction=True) as p:
        p.incr("n").sadd("s", *range(40)).execute()
    r.execute_command("ECHO", "x" * 200)
    entries = r.execute_command("SLOWLOG", "GET", -1)
    commands = [[a for a in e[3]] for e in entries]
    # Newest first; the transaction's commands are logged, EXEC and MULTI are not.
    assert commands[0] == ["ECHO", "x" * 128 + "... (72 more bytes)"]
    assert ["INCRBY", "n", "1"] in commands and ["GET", "k"] in commands and ["SET", "k", "v"] in commands
    assert not any(c[0].upper() in ("EXEC", "MULTI") for c in commands)
    sadd = next(c for c in commands if c[0] == "SADD")
    assert len(sadd) == 32 and sadd[-1] == "... (11 more arguments)"
    ids = [e[0] for e in entries]
    assert ids == sorted(ids, reverse=True)
    assert all(e[4].startswith("127.0.0.1:") and e[5] == "reporter" for e in entries)
    assert r.slowlog_len() == len(entries) + 1  # and the SLOWLOG GET
    r.config_set("slowlog-max-len", 2)
    assert r.slowlog_len() == 2
    r.config_set("slowlog-log-slower-than", -1)  # none
    r.slowlog_reset()
    r.set("k", "v")
    assert r.slowlog_len() == 0
    assert "between" in err(r, "CONFIG", "SET", "slowlog-max-len", "-1")
    assert "Try SLOWLOG HELP" in err(r, "SLOWLOG", "NOPE")
    # LATENCY: off until a threshold is set; then a command over it is a spike of `command`.
    r.config_set("latency-monitor-threshold", 1)
    r.sadd("big", *range(50000))  # takes well over a millisecond
    [[event, at, latest, worst]] = r.execute_command("LATENCY", "LATEST")
    assert event == "command" and latest >= 1 and worst >= latest and abs(at - time.time()) < 60
    assert len(r.execute_command("LATENCY", "HISTORY", "command")) == 1
    assert r.execute_command("LATENCY", "RESET") == 1
    assert r.execute_command("LATENCY", "LATEST") == []


def test_client_pause_holds_writes_or_everything_until_unpaused(node):
    import threading
    admin, other = node.client(decode_responses=True), node.client(decode_responses=True)
    other.set("k", "before")
    assert admin.execute_command("CLIENT", "PAUSE", 60000, "WRITE")
    assert other.get("k") == "before"  # reads go on
    done = threading.Event()
    writer = threading.Thread(target=lambda: (other.set("k", "after"), done.set()))
    writer.start()
    assert not done.wait(0.5), "a write ran while writes were paused"
    assert admin.get("k") == "before"
    assert admin.execute_command("CLIENT", "UNPAUSE")
    assert done.wait(10) and other.get("k") == "after"
    writer.join()
    # ALL holds every command, to the deadline.
    started = time.monotonic()
    admin.execute_command("CLIENT", "PAUSE", 300, "ALL")
    assert other.ping() and time.monotonic() - started >= 0.25
    assert "syntax" in err(admin, "CLIENT", "PAUSE", 10, "SOME")
    assert "timeout is not an integer" in err(admin, "CLIENT", "PAUSE", -1)


def resp3_tracking_client(port):
    """A raw RESP3 connection with CLIENT TRACKING on, and a reader of what arrives."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=5)

    def send(*words):
        s.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))

    def received(wait=0.3):
        time.sleep(wait)
        s.settimeout(0.2)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
        return out

    send(b"HELLO", b"3")
    send(b"CLIENT", b"TRACKING", b"on")
    received()
    return send, received


def test_client_tracking_invalidates_what_a_client_read(node):
    send, received = resp3_tracking_client(node.port)
    other = node.client()
    other.set("cached", "1")
    other.set("unread", "1")
    send(b"GET", b"cached")
    assert received().endswith(b"$1\r\n1\r\n")
    other.set("unread", "2")
    assert received() == b"", "no invalidation for a key the client did not read"
    other.set("cached", "2")
    assert received() == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ncached\r\n"
    other.set("cached", "3")
    assert received() == b"", "a key is invalidated once, until read again"
    # FLUSHALL invalidates everything at once: a null key list.
    send(b"GET", b"cached")
    received()
    other.flushall()
    assert received() == b">2\r\n$10\r\ninvalidate\r\n_\r\n"
    # Errors as Redis gives them.
    assert "PREFIX option requires BCAST" in err(other, "CLIENT", "TRACKING", "on", "PREFIX", "a")
    assert "does not exist" in err(other, "CLIENT", "TRACKING", "on", "REDIRECT", "999999")


def test_reads_see_a_transaction_whole_or_not_at_all(node):
    """A read of several keys, or of a hash's fields, sees one state: never part of a MULTI/EXEC
    (or of one HSET of many fields) that the engine commits while the read runs. Reads run off
    the engine thread, on a view of the store (found by test_replication's cross-region check,
    which saw 19 of a transaction's 50 keys)."""
    keys = [f"tx{i}" for i in range(50)]
    node.client().mset({k: "0" for k in keys})
    node.client().hset("txh", mapping={f"f{i}": "0" for i in range(50)})
    stop = threading.Event()

    def write():
        c = node.client()
        n = 0
        while not stop.is_set():
            n += 1
            pipe = c.pipeline(transaction=True)
            for k in keys:
                pipe.set(k, n)
            pipe.execute()
            c.hset("txh", mapping={f"f{i}": n for i in range(50)})

    writer = threading.Thread(target=write)
    writer.start()
    torn = []
    try:
        c = node.client()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            values = set(c.mget(keys))
            fields = set(c.hgetall("txh").values())
            if len(values) != 1 or len(fields) != 1:
                torn.append((sorted(values), sorted(fields)))
    finally:
        stop.set()
        writer.join()
    assert torn == [], f"{len(torn)} reads saw part of a transaction, first {torn[0]}"
