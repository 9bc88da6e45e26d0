"""Differential tests: the same commands against redis-server and one Meridian node, replies
(values and error texts) compared exactly. Covers the commands each family has, edge cases
included; a mismatch names the command and both replies."""

import shutil
import subprocess
import time

import pytest
import redis

from conftest import free_port


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def pair(node, request):
    """A raw client of a fresh redis-server (no persistence, one database) and one of `node`,
    both speaking RESP2 or both RESP3."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    # One database, as Meridian has.
    proc = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no", "--databases", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ref = redis.Redis(port=port, single_connection_client=True, protocol=request.param)
    deadline = time.monotonic() + 10
    while True:
        try:
            ref.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield ref, node.client(single_connection_client=True, protocol=request.param)
    proc.kill()
    proc.wait()


def plain(value):
    """A reply with the errors inside arrays (EXEC's) turned into comparable values."""
    if isinstance(value, Exception):
        return ("error", str(value))
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# Commands whose array replies come in no set order (random picks, an order that depends on
# each server's encoding).
UNORDERED = {"SPOP", "SRANDMEMBER", "HRANDFIELD", "KEYS", "HKEYS", "HVALS", "SMEMBERS", "SINTER", "SUNION",
             "SDIFF"}
# Float increments compare as numbers: Redis adds in long doubles and prints up to 17
# significant digits of them; Meridian adds in doubles (documented in README.md).
FLOATS = {"INCRBYFLOAT", "HINCRBYFLOAT"}
# Commands whose RESP2 flat arrays are maps with no set order.
MAPS = {"HGETALL", "CONFIG"}


def raw(client, command):
    """The reply as the server sent it, without redis-py's per-command conversions (which
    expect one reply shape, e.g. an integer from ZADD where ZADD INCR answers a score)."""
    conn = client.connection
    conn.send_command(*command)
    return conn.read_response()


def reply(client, command):
    try:
        value = plain(raw(client, command))
    except redis.ResponseError as e:
        return ("error", str(e))
    if command[0].upper() in UNORDERED and isinstance(value, (list, set)):
        value = sorted(value)
    if command[0].upper() in FLOATS and isinstance(value, bytes):
        value = float(value)
    if command[0].upper() in MAPS and isinstance(value, list):
        value = dict(zip(value[::2], value[1::2]))
    return ("ok", value)


def same(pair, script):
    """Runs each command on both servers in turn; every reply must match."""
    ref, ours = pair
    for command in script:
        expected, got = reply(ref, command), reply(ours, command)
        assert got == expected, f"{command}: redis-server answered {expected}, Meridian {got}"


def test_older_forms_of_set(pair):
    same(pair, [
        ("SETNX", "k", "1"), ("SETNX", "k", "2"), ("GET", "k"),
        ("SETEX", "e", "100", "v"), ("TTL", "e"), ("GET", "e"),
        ("SETEX", "e", "0", "v"), ("SETEX", "e", "-5", "v"), ("SETEX", "e", "x", "v"),
        ("PSETEX", "p", "100000", "v"), ("GET", "p"), ("PSETEX", "p", "0", "v"),
        ("GETSET", "k", "3"), ("GETSET", "missing", "4"), ("GET", "missing"),
        ("SADD", "s", "m"), ("GETSET", "s", "x"), ("SETNX", "s", "x"), ("TYPE", "s"),
        ("SETEX", "s", "100", "now a string"), ("TYPE", "s"), ("GET", "s"),
        ("MSETNX", "a", "1", "b", "2"), ("MGET", "a", "b"), ("MSETNX", "b", "9", "c", "9"),
        ("MGET", "b", "c"), ("MSETNX", "a"), ("SETNX", "k"), ("GETSET", "k"),
    ])


def test_absolute_deadlines(pair):
    now = int(time.time())
    same(pair, [
        ("SET", "k", "v"), ("EXPIREAT", "k", now + 1000), ("TTL", "k"), ("EXPIRETIME", "k"),
        ("PEXPIRETIME", "k"), ("PEXPIREAT", "k", (now + 2000) * 1000), ("EXPIRETIME", "k"),
        ("EXPIREAT", "k", now + 500, "GT"), ("EXPIREAT", "k", now + 500, "LT"),
        ("EXPIRETIME", "k"), ("EXPIREAT", "k", now + 900, "NX"), ("EXPIREAT", "k", "x"),
        ("EXPIREAT", "k", now + 900, "NX", "XX"), ("EXPIREAT", "k", now + 900, "BOGUS"),
        ("PERSIST", "k"), ("EXPIRETIME", "k"), ("EXPIREAT", "k", now + 900, "XX"),
        ("EXPIREAT", "missing", now + 100), ("EXPIRETIME", "missing"),
        ("PEXPIRETIME", "missing"), ("EXPIREAT", "k", now - 10), ("EXISTS", "k"),
        ("SET", "p", "v"), ("PEXPIREAT", "p", 1), ("GET", "p"),
    ])


def test_hash_and_set_additions(pair):
    same(pair, [
        ("HSETNX", "h", "f", "1"), ("HSETNX", "h", "f", "2"), ("HGET", "h", "f"),
        ("HSTRLEN", "h", "f"), ("HSTRLEN", "h", "nope"), ("HSTRLEN", "nope", "f"),
        ("HSETNX", "h", "g", "hello"), ("HSTRLEN", "h", "g"), ("HLEN", "h"),
        ("SET", "str", "v"), ("HSETNX", "str", "f", "1"), ("HSTRLEN", "str", "f"),
        ("SADD", "s", "a", "b"), ("SMISMEMBER", "s", "a", "x", "b"), ("SMISMEMBER", "nope", "a", "b"),
        ("SMISMEMBER", "str", "a"), ("SMISMEMBER", "s"),
    ])


def test_flush(pair):
    same(pair, [
        ("SET", "a", "1"), ("HSET", "h", "f", "v"), ("SADD", "s", "m"), ("SET", "e", "v", "EX", "100"),
        ("FLUSHALL",), ("DBSIZE",), ("GET", "a"), ("HGETALL", "h"), ("TTL", "e"),
        ("SET", "a", "2"), ("FLUSHDB", "ASYNC"), ("EXISTS", "a"), ("FLUSHALL", "SYNC"),
        ("FLUSHALL", "BOGUS"), ("FLUSHDB", "SYNC", "ASYNC"), ("SET", "a", "3"), ("GET", "a"),
    ])


def test_transactions(pair):
    same(pair, [
        ("MULTI",), ("SET", "a", "1"), ("INCR", "a"), ("GET", "a"), ("PING",), ("ECHO", "x"), ("EXEC",),
        ("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("SET", "b", "1"), ("DISCARD",), ("GET", "b"),
        ("MULTI",), ("SET", "c"), ("NOPE",), ("SET", "c", "1"), ("EXEC",), ("GET", "c"),
        ("SADD", "st", "m"), ("MULTI",), ("SET", "x", "1"), ("INCR", "st"), ("GET", "x"), ("EXEC",),
        ("MULTI",), ("EXEC",),
        # WATCH: the connection's own write counts as a change.
        ("WATCH", "w"), ("SET", "w", "changed"), ("MULTI",), ("SET", "w", "tx"), ("EXEC",), ("GET", "w"),
        ("WATCH", "w", "missing"), ("MULTI",), ("SET", "w", "tx2"), ("EXEC",), ("GET", "w"),
        ("WATCH", "w2"), ("UNWATCH",), ("SET", "w2", "x"), ("MULTI",), ("GET", "w2"), ("EXEC",),
        ("WATCH", "w3"), ("MULTI",), ("DISCARD",), ("SET", "w3", "1"), ("MULTI",), ("GET", "w3"), ("EXEC",),
        ("MULTI",), ("WATCH", "w"), ("SET", "w", "in"), ("EXEC",), ("GET", "w"),
        ("WATCH", "gone"), ("SET", "gone", "1"), ("DEL", "gone"), ("MULTI",), ("SET", "gone", "2"), ("EXEC",),
        ("WATCH",), ("MULTI", "x"),
    ])


def test_watch_sees_another_clients_write(pair):
    """A key watched by one connection and written by another: EXEC answers nil, on both."""
    for first in pair:
        other = redis.Redis(connection_pool=redis.ConnectionPool(**first.connection_pool.connection_kwargs))
        first.execute_command("SET", "k", "0")
        first.execute_command("WATCH", "k")
        other.execute_command("SET", "k", "1")
        first.execute_command("MULTI")
        first.execute_command("SET", "k", "2")
        assert first.execute_command("EXEC") is None
        first.execute_command("WATCH", "k")
        other.execute_command("GET", "k")
        first.execute_command("MULTI")
        first.execute_command("SET", "k", "3")
        assert first.execute_command("EXEC") == [b"OK"]


def test_set_algebra_and_moves(pair):
    same(pair, [
        ("SADD", "a", "1", "2", "3", "4"), ("SADD", "b", "3", "4", "5"), ("SADD", "c", "4", "6"),
        ("SET", "str", "x"),
        ("SINTER", "a", "b"), ("SINTER", "a", "b", "c"), ("SINTER", "a", "nope"), ("SINTER", "a", "str"),
        ("SUNION", "a", "b", "c"), ("SUNION", "nope"), ("SDIFF", "a", "b"), ("SDIFF", "a", "b", "c"),
        ("SDIFF", "nope", "a"), ("SDIFF", "str", "a"),
        ("SINTERSTORE", "d", "a", "b"), ("SMEMBERS", "d"), ("SUNIONSTORE", "d", "a", "c"), ("SCARD", "d"),
        ("SDIFFSTORE", "d", "a", "a"), ("EXISTS", "d"), ("SUNIONSTORE", "str", "b"), ("TYPE", "str"),
        ("SET", "str", "x"),
        ("SINTERSTORE", "e", "a", "str"),
        ("SINTERCARD", "2", "a", "b"), ("SINTERCARD", "2", "a", "b", "LIMIT", "1"),
        ("SINTERCARD", "2", "a", "b", "LIMIT", "0"), ("SINTERCARD", "0", "a"), ("SINTERCARD", "3", "a"),
        ("SINTERCARD", "1", "a", "LIMIT", "-1"), ("SINTERCARD", "1", "a", "BOGUS", "1"),
        ("SMOVE", "a", "b", "1"), ("SMEMBERS", "a"), ("SMEMBERS", "b"), ("SMOVE", "a", "b", "99"),
        ("SMOVE", "nope", "b", "1"), ("SMOVE", "a", "str", "2"), ("SMOVE", "a", "a", "2"),
        ("SMOVE", "a", "fresh", "2"), ("SMEMBERS", "fresh"),
        ("SADD", "one", "only"), ("SPOP", "one"), ("EXISTS", "one"), ("SPOP", "one"), ("SPOP", "one", "3"),
        ("SADD", "two", "x", "y"), ("SPOP", "two", "5"), ("EXISTS", "two"), ("SPOP", "two", "-1"),
        ("SPOP", "str"), ("SADD", "r", "m"), ("SRANDMEMBER", "r"), ("SRANDMEMBER", "r", "5"),
        ("SRANDMEMBER", "r", "-3"), ("SRANDMEMBER", "nope"), ("SRANDMEMBER", "nope", "-2"),
        ("SRANDMEMBER", "r", "0"), ("SRANDMEMBER", "str"), ("SRANDMEMBER", "r", "x"),
    ])


def test_random_picks_are_members(node):
    r = node.client(decode_responses=True)
    r.sadd("s", *range(20))
    picked = r.srandmember("s", 5)
    assert len(set(picked)) == 5 and set(picked) <= {str(i) for i in range(20)}
    assert len(r.srandmember("s", -30)) == 30
    popped = r.spop("s", 7)
    assert len(popped) == 7 and r.scard("s") == 13 and not set(popped) & set(r.smembers("s"))


def test_rename_copy_touch(pair):
    same(pair, [
        ("SET", "s", "v", "EX", "1000"), ("HSET", "h", "f1", "1", "f2", "2"), ("SADD", "set", "a", "b"),
        ("RENAME", "s", "s2"), ("GET", "s"), ("GET", "s2"), ("TTL", "s2"),
        ("RENAME", "nope", "x"), ("RENAME", "s2", "s2"), ("RENAMENX", "s2", "s2"),
        ("RENAME", "h", "s2"), ("TYPE", "s2"), ("HGETALL", "s2"), ("EXISTS", "h"),
        ("RENAMENX", "set", "s2"), ("RENAMENX", "set", "set2"), ("SMEMBERS", "set2"), ("TTL", "set2"),
        ("COPY", "set2", "set3"), ("SMEMBERS", "set3"), ("COPY", "set2", "set3"),
        ("COPY", "s2", "set3", "REPLACE"), ("TYPE", "set3"), ("HGETALL", "set3"),
        ("COPY", "nope", "x"), ("COPY", "s2", "s2"), ("COPY", "s2", "x", "DB", "1"),
        ("COPY", "s2", "x", "DB", "0"), ("HGETALL", "x"), ("COPY", "s2", "y", "BOGUS"),
        ("SET", "n", "5"), ("INCR", "n"), ("RENAME", "n", "m"), ("INCR", "m"), ("GET", "m"),
        ("TOUCH", "m", "x", "nope"), ("TOUCH", "nope"),
        ("FLUSHALL",), ("RANDOMKEY",), ("SET", "only", "1"), ("RANDOMKEY",),
    ])


def test_ranges_and_getex(pair):
    same(pair, [
        ("SET", "s", "Hello World"), ("GETRANGE", "s", "0", "4"), ("GETRANGE", "s", "-5", "-1"),
        ("GETRANGE", "s", "-1", "-5"), ("GETRANGE", "s", "5", "2"), ("GETRANGE", "s", "0", "100"),
        ("GETRANGE", "s", "-100", "2"), ("GETRANGE", "nope", "0", "1"), ("GETRANGE", "s", "x", "1"),
        ("SUBSTR", "s", "6", "-1"), ("SADD", "set", "m"), ("GETRANGE", "set", "0", "1"),
        ("SETRANGE", "s", "6", "Redis"), ("GET", "s"), ("SETRANGE", "s", "20", "!"), ("GET", "s"),
        ("SETRANGE", "fresh", "3", "x"), ("GET", "fresh"), ("SETRANGE", "fresh", "0", ""),
        ("SETRANGE", "none", "5", ""), ("EXISTS", "none"), ("SETRANGE", "s", "-1", "x"),
        ("SETRANGE", "set", "0", "x"), ("SET", "n", "10"), ("SETRANGE", "n", "1", "5"), ("INCR", "n"),
        ("SET", "g", "v"), ("GETEX", "g"), ("TTL", "g"), ("GETEX", "g", "EX", "100"), ("TTL", "g"),
        ("GETEX", "g", "PERSIST"), ("TTL", "g"), ("GETEX", "g", "PX", "100000"), ("TTL", "g"),
        ("GETEX", "g", "EX", "0"), ("GETEX", "g", "EX"), ("GETEX", "g", "BOGUS"), ("GETEX", "nope", "EX", "5"),
        ("GETEX", "set"), ("GETEX", "g", "EX", "x"),
    ])


def test_hash_floats_and_random_fields(pair):
    same(pair, [
        ("HSET", "h", "f", "10.5", "s", "abc"), ("HINCRBYFLOAT", "h", "f", "0.1"),
        ("HINCRBYFLOAT", "h", "f", "-5"), ("HINCRBYFLOAT", "h", "new", "3"), ("HGET", "h", "new"),
        ("HINCRBYFLOAT", "h", "s", "1"), ("HINCRBYFLOAT", "h", "f", "x"), ("SET", "str", "1"),
        ("HINCRBYFLOAT", "str", "f", "1"), ("HINCRBYFLOAT", "h", "f", "1e308"), ("HINCRBYFLOAT", "h", "f", "1e308"),
        ("HSET", "one", "k", "v"), ("HRANDFIELD", "one"), ("HRANDFIELD", "one", "3"),
        ("HRANDFIELD", "one", "2", "WITHVALUES"), ("HRANDFIELD", "one", "-2", "WITHVALUES"),
        ("HRANDFIELD", "nope"), ("HRANDFIELD", "nope", "2"), ("HRANDFIELD", "str"),
        ("HRANDFIELD", "one", "1", "BOGUS"), ("HRANDFIELD", "one", "x"), ("HRANDFIELD", "one", "0"),
    ])


def test_collection_scans_errors_and_empties(pair):
    same(pair, [
        ("SET", "str", "v"), ("SADD", "s", "1"), ("HSET", "h", "f", "v"),
        ("SSCAN", "str", "0"), ("HSCAN", "str", "0"), ("SSCAN", "nope", "0"), ("HSCAN", "nope", "0"),
        ("SSCAN", "s", "x"), ("SSCAN", "s", "0", "COUNT", "0"), ("SSCAN", "s", "0", "COUNT"),
        ("SSCAN", "s", "0", "BOGUS", "1"), ("SSCAN", "s", "0"), ("HSCAN", "h", "0"),
        ("HSCAN", "h", "0", "MATCH", "x*"), ("SSCAN", "s", "0", "MATCH", "1", "COUNT", "5"),
    ])


def test_collection_scans_visit_every_member_once(node):
    r = node.client(decode_responses=True)
    r.sadd("big", *[f"m{i}" for i in range(1000)])
    r.hset("bigh", mapping={f"f{i}": str(i) for i in range(300)})
    seen, cursor, calls = [], 0, 0
    while True:
        cursor, page = r.sscan("big", cursor, count=100)
        seen += page
        calls += 1
        if cursor == 0:
            break
    assert sorted(seen) == sorted(f"m{i}" for i in range(1000)) and calls >= 10
    assert sorted(r.sscan_iter("big", match="m99*")) == ["m99"] + [f"m99{i}" for i in range(10)]
    assert dict(r.hscan_iter("bigh")) == {f"f{i}": str(i) for i in range(300)}
    r.sadd("small", "a", "b")
    assert r.sscan("small", 0, count=1) == (0, ["a", "b"]), "a small set comes whole"


def test_config_set_of_encoding_parameters(pair):
    same(pair, [
        ("CONFIG", "SET", "hash-max-listpack-entries", "64"), ("CONFIG", "GET", "hash-max-listpack-entries"),
        ("CONFIG", "SET", "set-max-intset-entries", "10", "lazyfree-lazy-user-del", "yes"),
        ("CONFIG", "GET", "lazyfree-lazy-user-del"), ("CONFIG", "SET", "hz", "x"),
        ("CONFIG", "SET", "activedefrag", "maybe"), ("CONFIG", "SET", "hz"),
    ])


def test_one_database(pair):
    same(pair, [
        ("SET", "k", "v"), ("MOVE", "k", "0"), ("MOVE", "k", "1"), ("MOVE", "k", "x"), ("MOVE", "nope", "1"),
        ("MOVE", "nope", "0"), ("SWAPDB", "0", "0"), ("SWAPDB", "0", "1"), ("SWAPDB", "x", "0"),
        ("SWAPDB", "0", "x"), ("SWAPDB", "0", "-1"), ("SELECT", "0"), ("SELECT", "1"), ("GET", "k"),
    ])


def test_bits(pair):
    same(pair, [
        ("SETBIT", "b", "7", "1"), ("GET", "b"), ("SETBIT", "b", "7", "0"), ("SETBIT", "b", "100", "1"),
        ("STRLEN", "b"), ("GETBIT", "b", "100"), ("GETBIT", "b", "99"), ("GETBIT", "b", "100000"),
        ("GETBIT", "nope", "3"), ("SETBIT", "b", "-1", "1"), ("SETBIT", "b", "1", "2"), ("SETBIT", "b", "x", "1"),
        ("SETBIT", "b", "4294967296", "1"), ("GETBIT", "b", "-1"),
        ("SET", "s", "foobar"), ("BITCOUNT", "s"), ("BITCOUNT", "s", "0", "0"), ("BITCOUNT", "s", "1", "1"),
        ("BITCOUNT", "s", "-2", "-1"), ("BITCOUNT", "s", "5", "30", "BIT"), ("BITCOUNT", "s", "1"),
        ("BITCOUNT", "s", "0", "-1", "BOGUS"), ("BITCOUNT", "s", "3", "1"), ("BITCOUNT", "nope"),
        ("SADD", "set", "m"), ("BITCOUNT", "set"), ("GETBIT", "set", "1"), ("SETBIT", "set", "1", "1"),
        ("SET", "p", "\xff\xf0\x00"), ("BITPOS", "p", "0"), ("BITPOS", "p", "1"), ("BITPOS", "p", "0", "2"),
        ("BITPOS", "p", "1", "2"), ("BITPOS", "p", "1", "1", "-1"), ("BITPOS", "p", "0", "0", "0"),
        ("BITPOS", "p", "1", "7", "15", "BIT"), ("BITPOS", "p", "0", "7", "15", "BIT"), ("BITPOS", "p", "2"),
        ("SET", "ones", "\xff\xff"), ("BITPOS", "ones", "0"), ("BITPOS", "ones", "0", "0", "-1"),
        ("BITPOS", "nope", "1"), ("BITPOS", "nope", "0"), ("BITPOS", "set", "1"), ("SET", "empty", ""),
        ("BITPOS", "empty", "0"), ("BITPOS", "empty", "1"),
        ("SET", "x", "abc"), ("SET", "y", "a"), ("BITOP", "AND", "d", "x", "y"), ("GET", "d"),
        ("BITOP", "OR", "d", "x", "y", "nope"), ("GET", "d"), ("BITOP", "XOR", "d", "x", "x"), ("GET", "d"),
        ("BITOP", "NOT", "d", "y"), ("GET", "d"), ("BITOP", "NOT", "d", "x", "y"), ("BITOP", "BOGUS", "d", "x"),
        ("BITOP", "AND", "d", "nope", "nope2"), ("EXISTS", "d"), ("BITOP", "AND", "d", "x", "set"),
        ("SET", "ttl", "v", "EX", "100"), ("SETBIT", "ttl", "1", "1"), ("TTL", "ttl"),
    ])


def test_lcs(pair):
    same(pair, [
        ("MSET", "key1", "ohmytext", "key2", "mynewtext"), ("LCS", "key1", "key2"), ("LCS", "key1", "key2", "LEN"),
        ("LCS", "key1", "key2", "IDX"), ("LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"),
        ("LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"), ("LCS", "key1", "key2", "LEN", "IDX"),
        ("LCS", "key1", "nope"), ("LCS", "nope", "nope2", "IDX"), ("LCS", "key1", "key2", "BOGUS"),
        ("LCS", "key1", "key2", "MINMATCHLEN"), ("LCS", "key1", "key2", "MINMATCHLEN", "x"),
        ("SADD", "set", "m"), ("LCS", "key1", "set"), ("LCS", "set", "key1", "BOGUS"),
        ("MSET", "a", "abcabcabcxyz", "b", "xyzabcabc"), ("LCS", "a", "b", "IDX", "WITHMATCHLEN"),
        ("MSET", "c", "aaaa", "d", "aa"), ("LCS", "c", "d", "IDX"), ("LCS", "d", "c", "IDX", "WITHMATCHLEN"),
    ])


def test_lists(pair):
    same(pair, [
        ("RPUSH", "l", "a", "b", "c"), ("LPUSH", "l", "x", "y"), ("LRANGE", "l", "0", "-1"),
        ("LLEN", "l"), ("LINDEX", "l", "0"), ("LINDEX", "l", "-1"), ("LINDEX", "l", "9"),
        ("LINDEX", "l", "x"), ("LSET", "l", "1", "X"), ("LSET", "l", "99", "v"),
        ("LSET", "nokey", "0", "v"), ("LINSERT", "l", "BEFORE", "a", "pre"),
        ("LINSERT", "l", "AFTER", "c", "post"), ("LINSERT", "l", "AFTER", "zz", "v"),
        ("LINSERT", "nokey", "AFTER", "a", "v"), ("LINSERT", "l", "MIDDLE", "a", "v"),
        ("LRANGE", "l", "0", "-1"), ("LRANGE", "l", "-3", "100"), ("LRANGE", "l", "5", "2"),
        ("RPUSH", "l", "a", "a"), ("LPOS", "l", "a"), ("LPOS", "l", "a", "RANK", "-1"),
        ("LPOS", "l", "a", "COUNT", "0"), ("LPOS", "l", "a", "RANK", "2", "COUNT", "5", "MAXLEN", "6"),
        ("LPOS", "l", "a", "RANK", "0"), ("LPOS", "l", "a", "COUNT", "-1"), ("LPOS", "l", "a", "BOGUS", "1"),
        ("LPOS", "nokey", "a"), ("LPOS", "nokey", "a", "COUNT", "2"),
        ("LREM", "l", "-1", "a"), ("LREM", "l", "0", "a"), ("LRANGE", "l", "0", "-1"),
        ("LTRIM", "l", "1", "-2"), ("LRANGE", "l", "0", "-1"), ("LTRIM", "l", "5", "1"), ("EXISTS", "l"),
        ("LPUSHX", "l", "v"), ("RPUSHX", "nokey", "v"), ("RPUSH", "l", "1", "2", "3", "4"),
        ("LPUSHX", "l", "0"), ("LPOP", "l"), ("RPOP", "l", "2"), ("LPOP", "l", "0"), ("LPOP", "l", "-1"),
        ("LPOP", "nokey"), ("LPOP", "nokey", "2"), ("LPOP", "l", "1", "2"), ("LPOP", "l", "10"),
        ("EXISTS", "l"), ("SET", "s", "v"), ("LPUSH", "s", "v"), ("LRANGE", "s", "0", "-1"),
        ("LPOP", "s"), ("LLEN", "s"),
    ])


def test_list_moves_and_multi_pops(pair):
    same(pair, [
        ("RPUSH", "a", "1", "2", "3"), ("LMOVE", "a", "b", "LEFT", "RIGHT"),
        ("LMOVE", "a", "b", "RIGHT", "LEFT"), ("LRANGE", "b", "0", "-1"), ("LMOVE", "a", "a", "LEFT", "RIGHT"),
        ("LMOVE", "a", "b", "UP", "LEFT"), ("LMOVE", "none", "b", "LEFT", "LEFT"), ("RPOPLPUSH", "b", "b"),
        ("LRANGE", "b", "0", "-1"), ("SET", "s", "x"), ("LMOVE", "a", "s", "LEFT", "LEFT"),
        ("LMOVE", "none", "s", "LEFT", "LEFT"), ("LRANGE", "a", "0", "-1"),
        ("LMPOP", "2", "none", "b", "LEFT"), ("LMPOP", "2", "none", "b", "RIGHT", "COUNT", "10"),
        ("LMPOP", "1", "none", "LEFT"), ("LMPOP", "0", "a", "LEFT"), ("LMPOP", "3", "a", "LEFT"),
        ("LMPOP", "1", "a", "LEFT", "COUNT", "0"), ("LMPOP", "1", "a", "SIDEWAYS"), ("LMPOP", "2", "s", "a", "LEFT"),
        ("RPUSH", "q", "x"), ("BLPOP", "none", "q", "0"), ("BRPOP", "q", "0.01"), ("BLPOP", "q", "-1"),
        ("BLPOP", "q", "x"), ("RPUSH", "q", "y", "z"), ("BLMOVE", "q", "r", "LEFT", "LEFT", "0"),
        ("BRPOPLPUSH", "q", "r", "0"), ("LRANGE", "r", "0", "-1"), ("BLMPOP", "0", "1", "r", "RIGHT", "COUNT", "5"),
        ("BLPOP", "s", "0"),
    ])


def test_blocking_inside_a_transaction_does_not_wait(pair):
    same(pair, [
        ("MULTI",), ("BLPOP", "empty", "0"), ("BLMOVE", "empty", "x", "LEFT", "LEFT", "0"), ("EXEC",),
    ])


def test_sorted_sets(pair):
    same(pair, [
        ("ZADD", "z", "1", "a", "2", "b", "3", "c"), ("ZADD", "z", "1.5", "a", "-0", "d"), ("ZCARD", "z"),
        ("ZSCORE", "z", "a"), ("ZSCORE", "z", "d"), ("ZSCORE", "z", "nope"), ("ZSCORE", "none", "a"),
        ("ZMSCORE", "z", "a", "nope", "c"), ("ZMSCORE", "none", "a"),
        ("ZADD", "z", "NX", "9", "a", "4", "e"), ("ZADD", "z", "XX", "CH", "9", "a", "4", "f"),
        ("ZADD", "z", "GT", "CH", "1", "a", "10", "b"), ("ZADD", "z", "LT", "5", "b"),
        ("ZADD", "z", "INCR", "0.1", "c"), ("ZADD", "z", "NX", "INCR", "1", "c"), ("ZADD", "z", "INCR", "1", "a", "2", "b"),
        ("ZADD", "z", "NX", "XX", "1", "a"), ("ZADD", "z", "GT", "LT", "1", "a"), ("ZADD", "z", "1", "a", "2"),
        ("ZADD", "z", "x", "a"), ("ZADD", "z", "nan", "a"), ("ZADD", "z"), ("ZADD", "z", "inf", "g", "-inf", "h"),
        ("ZINCRBY", "z", "2.5", "a"), ("ZINCRBY", "z", "1", "new"), ("ZINCRBY", "z", "x", "a"),
        ("ZINCRBY", "z", "-inf", "g"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZRANK", "z", "c"), ("ZREVRANK", "z", "c"), ("ZRANK", "z", "nope"), ("ZRANK", "none", "a"),
        ("ZREM", "z", "g", "h", "nope"), ("ZREM", "none", "a"),
        ("ZRANGE", "z", "1", "2"), ("ZRANGE", "z", "-2", "-1", "WITHSCORES"), ("ZRANGE", "z", "5", "1"),
        ("ZRANGE", "z", "(1", "10", "BYSCORE"), ("ZRANGE", "z", "10", "(1", "BYSCORE", "REV", "WITHSCORES"),
        ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"), ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"),
        ("ZRANGE", "z", "0", "-1", "REV"), ("ZRANGE", "z", "0", "1", "LIMIT", "0", "1"),
        ("ZRANGE", "z", "[a", "[c", "BYLEX", "WITHSCORES"), ("ZRANGE", "z", "x", "y", "BYSCORE"),
        ("ZRANGE", "z", "0", "1", "BYSCORE", "BYLEX"), ("ZRANGE", "z", "0", "-1", "WHAT"),
        ("ZREVRANGE", "z", "0", "1", "WITHSCORES"), ("ZRANGEBYSCORE", "z", "2", "+inf", "WITHSCORES", "LIMIT", "0", "2"),
        ("ZREVRANGEBYSCORE", "z", "+inf", "2"), ("ZRANGEBYSCORE", "z", "(4", "(4"), ("ZCOUNT", "z", "(1.5", "4"),
        ("ZCOUNT", "z", "x", "1"), ("ZCOUNT", "none", "0", "1"),
        ("ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e"),
        ("ZRANGEBYLEX", "lex", "-", "+"), ("ZRANGEBYLEX", "lex", "(a", "[c"), ("ZREVRANGEBYLEX", "lex", "+", "(c"),
        ("ZRANGEBYLEX", "lex", "[b", "+", "LIMIT", "1", "2"), ("ZLEXCOUNT", "lex", "[b", "(e"), ("ZRANGEBYLEX", "lex", "b", "c"),
        ("ZREMRANGEBYLEX", "lex", "[b", "[c"), ("ZRANGE", "lex", "0", "-1"),
        ("ZREMRANGEBYRANK", "z", "0", "1"), ("ZREMRANGEBYSCORE", "z", "(4", "+inf"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZPOPMIN", "lex"), ("ZPOPMAX", "lex", "2"), ("ZPOPMIN", "lex", "0"), ("ZPOPMIN", "lex", "-1"), ("ZPOPMIN", "none"),
        ("ZPOPMIN", "none", "3"), ("EXISTS", "lex"),
        ("SET", "s", "x"), ("ZADD", "s", "1", "a"), ("ZRANGE", "s", "0", "-1"), ("ZCARD", "s"), ("ZSCORE", "s", "a"),
    ])


def test_sorted_set_algebra_and_pops(pair):
    same(pair, [
        ("ZADD", "a", "1", "x", "2", "y", "3", "z"), ("ZADD", "b", "10", "y", "20", "z", "30", "w"), ("SADD", "s", "x", "w", "v"),
        ("ZUNION", "2", "a", "b", "WITHSCORES"), ("ZUNION", "3", "a", "b", "s", "WEIGHTS", "1", "2", "3", "WITHSCORES"),
        ("ZINTER", "2", "a", "b", "AGGREGATE", "MIN", "WITHSCORES"), ("ZINTER", "2", "a", "b", "AGGREGATE", "MAX"),
        ("ZDIFF", "2", "a", "b", "WITHSCORES"), ("ZDIFF", "1", "a"), ("ZUNION", "0", "a"), ("ZUNION", "3", "a", "b"),
        ("ZUNION", "2", "a", "b", "WEIGHTS", "1", "x"), ("ZUNION", "2", "a", "b", "AGGREGATE", "AVG"),
        ("ZUNIONSTORE", "u", "2", "a", "b"), ("ZRANGE", "u", "0", "-1", "WITHSCORES"),
        ("ZINTERSTORE", "i", "2", "a", "b", "WEIGHTS", "2", "0.5"), ("ZRANGE", "i", "0", "-1", "WITHSCORES"),
        ("ZDIFFSTORE", "d", "2", "a", "b"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"), ("ZINTERSTORE", "i", "2", "a", "none"),
        ("EXISTS", "i"), ("ZUNIONSTORE", "u", "1", "a", "WITHSCORES"), ("ZINTERCARD", "2", "a", "b"),
        ("ZINTERCARD", "2", "a", "b", "LIMIT", "1"), ("ZINTERCARD", "0", "a"), ("ZINTERCARD", "3", "a", "b"),
        ("ZINTERCARD", "2", "a", "b", "LIMIT", "-1"), ("SET", "str", "v"), ("ZUNION", "2", "a", "str"),
        ("ZRANGESTORE", "r", "b", "0", "1"), ("ZRANGE", "r", "0", "-1", "WITHSCORES"),
        ("ZRANGESTORE", "r", "b", "(10", "+inf", "BYSCORE", "LIMIT", "0", "1"), ("ZRANGE", "r", "0", "-1"),
        ("ZRANGESTORE", "r", "b", "5", "1"), ("EXISTS", "r"), ("ZRANGESTORE", "r", "b", "0", "1", "WITHSCORES"),
        ("ZMPOP", "2", "none", "b", "MIN"), ("ZMPOP", "1", "b", "MAX", "COUNT", "5"), ("ZMPOP", "1", "b", "MAX"),
        ("ZMPOP", "1", "a", "MIDDLE"), ("ZMPOP", "0", "a", "MIN"),
        ("BZPOPMIN", "none", "a", "0"), ("BZPOPMAX", "a", "0.01"), ("BZMPOP", "0", "1", "a", "MIN", "COUNT", "3"),
        ("BZPOPMIN", "str", "0"), ("ZADD", "c", "1", "m"), ("COPY", "c", "c2"), ("RENAME", "c2", "c3"),
        ("ZRANGE", "c3", "0", "-1", "WITHSCORES"), ("TYPE", "c3"),
    ])


def test_sort(pair):
    same(pair, [
        ("RPUSH", "l", "3", "1", "2", "10"), ("SORT", "l"), ("SORT", "l", "DESC"), ("SORT", "l", "ALPHA"),
        ("SORT", "l", "LIMIT", "1", "2"), ("SORT", "l", "LIMIT", "-1", "-1"), ("SORT", "l", "LIMIT", "9", "1"),
        ("MSET", "w_1", "30", "w_2", "20", "w_3", "10", "o_1", "one", "o_3", "three"),
        ("HSET", "h_10", "f", "hv"), ("SORT", "l", "BY", "w_*"), ("SORT", "l", "BY", "w_*", "GET", "o_*", "GET", "#"),
        ("SORT", "l", "BY", "nosort", "GET", "h_*->f"), ("SORT", "l", "BY", "nosort", "DESC"),
        ("SORT", "l", "BY", "w_*", "ALPHA", "DESC"), ("SORT", "l", "GET", "o_*", "STORE", "dst"), ("LRANGE", "dst", "0", "-1"),
        ("SORT", "nokey", "STORE", "dst"), ("EXISTS", "dst"), ("RPUSH", "bad", "a", "1"), ("SORT", "bad"),
        ("SORT", "bad", "ALPHA"), ("SADD", "s", "5", "3", "4"), ("SORT", "s"), ("ZADD", "z", "1", "b", "2", "a"),
        ("SORT", "z", "ALPHA"), ("SORT", "z", "BY", "nosort"), ("SORT", "z", "BY", "nosort", "DESC", "LIMIT", "0", "1"),
        ("SORT", "w_1"), ("SORT", "l", "LIMIT", "1"), ("SORT", "l", "WHAT"), ("SORT_RO", "l", "DESC"),
        ("SORT_RO", "l", "STORE", "x"),
    ])


def test_object(pair):
    same(pair, [
        ("SET", "i", "123"), ("SET", "e", "hello"), ("SET", "r", "x" * 50), ("RPUSH", "l", "a"), ("HSET", "h", "f", "v"),
        ("SADD", "si", "1", "2"), ("SADD", "ss", "a"), ("ZADD", "z", "1", "a"),
        ("OBJECT", "ENCODING", "i"), ("OBJECT", "ENCODING", "e"), ("OBJECT", "ENCODING", "r"),
        ("OBJECT", "ENCODING", "l"), ("OBJECT", "ENCODING", "h"), ("OBJECT", "ENCODING", "si"),
        ("OBJECT", "ENCODING", "ss"), ("OBJECT", "ENCODING", "z"), ("OBJECT", "ENCODING", "none"),
        ("OBJECT", "REFCOUNT", "e"), ("OBJECT", "FREQ", "e"), ("OBJECT", "IDLETIME", "e"), ("OBJECT", "IDLETIME", "none"),
        ("OBJECT", "BOGUS", "e"), ("OBJECT", "ENCODING"),
    ])
