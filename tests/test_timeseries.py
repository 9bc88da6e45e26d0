"""Time series (issue 16) through redis-py's own `r.ts()` client: RedisTimeSeries's commands on
one node in RESP2 and RESP3, and series that merge across three regions: concurrent samples at
one instant resolve by the duplicate policy the same everywhere, deletes and compaction rules
give the same answers in every region, including samples a region wrote while cut off."""

import time

import pytest
import redis
from redis.commands.timeseries.info import TSInfo

from test_replication import converged, peer_state, start_cluster, wait_for, connected_peers


def ts_info(ts, key):
    """TS.INFO parsed by redis-py's own TSInfo (which its RESP3 client leaves to the caller)."""
    reply = ts.info(key)
    return TSInfo(reply) if isinstance(reply, dict) else reply


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def ts(node, request):
    return node.client(protocol=request.param).ts()


def test_create_add_get_range_info(ts):
    assert ts.create("temp:a", retention_msecs=0, labels={"room": "a", "kind": "temp"})
    assert ts.add("temp:a", 1000, 20.5) == 1000
    assert ts.add("temp:a", 2000, 21.5) == 2000
    assert ts.madd([("temp:a", 3000, 22), ("temp:a", 4000, 23)]) == [3000, 4000]
    assert list(ts.get("temp:a")) == [4000, 23.0]
    assert [list(s) for s in ts.range("temp:a", "-", "+")] == [
        [1000, 20.5], [2000, 21.5], [3000, 22.0], [4000, 23.0]]
    assert [list(s) for s in ts.revrange("temp:a", 0, 5000, count=2)] == [[4000, 23.0], [3000, 22.0]]
    assert [list(s) for s in ts.range("temp:a", 1500, 3500)] == [[2000, 21.5], [3000, 22.0]]
    i = ts_info(ts, "temp:a")
    assert (i.total_samples, i.first_timestamp, i.last_timestamp) == (4, 1000, 4000)
    assert i.labels == {"room": "a", "kind": "temp"}
    assert ts.client.type("temp:a") == b"TSDB-TYPE"


def test_every_aggregator_with_align_bucket_timestamp_and_empty(ts):
    for t, v in [(0, 1), (1, 3), (10, 5), (31, 7)]:
        ts.add("s", t, v)

    def agg(kind, **kw):
        return [list(x) for x in ts.range("s", 0, 40, aggregation_type=kind, bucket_size_msec=10, **kw)]

    assert agg("avg") == [[0, 2.0], [10, 5.0], [30, 7.0]]
    assert agg("sum") == [[0, 4.0], [10, 5.0], [30, 7.0]]
    assert agg("min") == [[0, 1.0], [10, 5.0], [30, 7.0]]
    assert agg("max") == [[0, 3.0], [10, 5.0], [30, 7.0]]
    assert agg("range") == [[0, 2.0], [10, 0.0], [30, 0.0]]
    assert agg("count") == [[0, 2.0], [10, 1.0], [30, 1.0]]
    assert agg("first") == [[0, 1.0], [10, 5.0], [30, 7.0]]
    assert agg("last") == [[0, 3.0], [10, 5.0], [30, 7.0]]
    assert agg("var.p")[0] == [0, 1.0]
    assert agg("std.s")[0][1] == pytest.approx(2 ** 0.5)
    assert agg("sum", empty=True) == [[0, 4.0], [10, 5.0], [20, 0.0], [30, 7.0]]
    assert agg("sum", bucket_timestamp="+") == [[10, 4.0], [20, 5.0], [40, 7.0]]
    assert agg("sum", align=5) == [[0, 4.0], [5, 5.0], [25, 7.0]]
    assert [list(x) for x in ts.range("s", 0, 40, filter_by_min_value=2, filter_by_max_value=6)] == [
        [1, 3.0], [10, 5.0]]
    assert [list(x) for x in ts.range("s", 0, 40, filter_by_ts=[1, 31])] == [[1, 3.0], [31, 7.0]]


def test_duplicate_policies_and_on_duplicate(ts):
    ts.create("block")
    ts.add("block", 10, 1)
    with pytest.raises(redis.ResponseError, match="DUPLICATE_POLICY is set to BLOCK"):
        ts.add("block", 10, 2)
    assert ts.add("block", 10, 5, on_duplicate="sum") == 10
    assert list(ts.get("block")) == [10, 6.0]
    for policy, want in [("last", 2.0), ("first", 1.0), ("min", 1.0), ("max", 2.0), ("sum", 3.0)]:
        key = f"p:{policy}"
        ts.create(key, duplicate_policy=policy)
        ts.add(key, 7, 1)
        ts.add(key, 7, 2)
        assert list(ts.get(key)) == [7, want], policy
        assert ts_info(ts, key).duplicate_policy == policy


def test_retention_trims_by_the_newest_sample(ts):
    ts.create("r", retention_msecs=100)
    for t in (0, 50, 100, 150, 200):
        ts.add("r", t, t)
    assert [s[0] for s in ts.range("r", "-", "+")] == [100, 150, 200]
    with pytest.raises(redis.ResponseError, match="older than retention"):
        ts.add("r", 10, 1)


def test_del_incrby_alter_and_errors(ts):
    c = ts.client
    for t in range(0, 100, 10):
        ts.add("d", t, t)
    assert ts.delete("d", 20, 55) == 4
    assert [s[0] for s in ts.range("d", "-", "+")] == [0, 10, 60, 70, 80, 90]
    assert ts.incrby("n", 5, timestamp=100) == 100
    assert ts.incrby("n", 2, timestamp=200) == 200
    assert ts.decrby("n", 1, timestamp=200) == 200
    assert list(ts.get("n")) == [200, 6.0]
    with pytest.raises(redis.ResponseError, match="maximum existing timestamp"):
        ts.incrby("n", 1, timestamp=150)
    assert ts.alter("n", labels={"unit": "pcs"}, retention_msecs=1000)
    i = ts_info(ts, "n")
    assert (i.labels, i.retention_msecs) == ({"unit": "pcs"}, 1000)
    c.set("str", "x")
    with pytest.raises(redis.ResponseError, match="the key is not a TSDB key"):
        ts.add("str", 1, 1)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        ts.range("str", "-", "+")
    with pytest.raises(redis.ResponseError, match="the key does not exist"):
        ts.get("missing")
    with pytest.raises(redis.ResponseError, match="key already exists"):
        ts.create("n")
    with pytest.raises(redis.ResponseError, match="invalid value"):
        ts.add("n", 300, "nan")
    with pytest.raises(redis.ResponseError, match="invalid timestamp"):
        ts.add("n", -5, 1)
    with pytest.raises(redis.ResponseError, match="Unknown aggregation type"):
        ts.range("n", "-", "+", aggregation_type="median", bucket_size_msec=10)
    with pytest.raises(redis.ResponseError, match="TSDB"):
        c.execute_command("TS.CREATE", "bad", "RETENTION", "soon")
    # Nothing changed by the refused commands.
    assert list(ts.get("n")) == [200, 6.0]
    assert not c.exists("bad", "missing")


def test_delete_rename_and_recreate(ts):
    c = ts.client
    ts.create("old", labels={"a": "1"})
    ts.add("old", 1, 1)
    ts.add("old", 2, 2)
    assert c.rename("old", "new")
    assert [list(s) for s in ts.range("new", "-", "+")] == [[1, 1.0], [2, 2.0]]
    assert ts_info(ts, "new").labels == {"a": "1"}
    assert c.delete("new") == 1
    assert not c.exists("new")
    ts.add("new", 5, 5)
    assert [list(s) for s in ts.range("new", "-", "+")] == [[5, 5.0]]
    assert ts_info(ts, "new").labels == {}


def test_mget_mrange_groupby_and_queryindex(ts):
    ts.create("t:1", labels={"kind": "temp", "room": "a"})
    ts.create("t:2", labels={"kind": "temp", "room": "b"})
    ts.create("h:1", labels={"kind": "hum", "room": "a"})
    for key, values in [("t:1", [20, 22]), ("t:2", [24, 26]), ("h:1", [50, 55])]:
        for i, v in enumerate(values):
            ts.add(key, 1000 * (i + 1), v)
    assert sorted(ts.queryindex(["kind=temp"])) in ([b"t:1", b"t:2"], ["t:1", "t:2"])
    assert sorted(map(lambda k: k if isinstance(k, str) else k.decode(), ts.queryindex(["room=a"]))) == ["h:1", "t:1"]
    got = ts.mget(["kind=temp"], with_labels=True)
    flat = {}
    for item in (got if isinstance(got, list) else [got]):
        for k, v in item.items():
            flat[k if isinstance(k, str) else k.decode()] = v
    assert set(flat) == {"t:1", "t:2"}
    ranges = ts.mrange("-", "+", ["kind=temp"], groupby="kind", reduce="max")
    as_dict = {}
    for item in (ranges if isinstance(ranges, list) else [ranges]):
        as_dict.update(item)
    (name, value), = as_dict.items()
    assert name in ("kind=temp", b"kind=temp")
    samples = value[-1]
    assert [list(s) for s in samples] == [[1000, 24.0], [2000, 26.0]]
    with pytest.raises(redis.ResponseError, match="at least one matcher"):
        ts.queryindex(["kind!=temp"])


def test_compaction_rules_chain_and_recompute_late_samples(ts):
    ts.create("raw")
    ts.create("by10")
    ts.create("by20")
    assert ts.createrule("raw", "by10", "sum", 10)
    assert ts.createrule("by10", "by20", "max", 20)
    for t in range(0, 45):
        ts.add("raw", t, 1)
    assert [list(s) for s in ts.range("by10", "-", "+")] == [[0, 10.0], [10, 10.0], [20, 10.0], [30, 10.0]]
    assert [list(s) for s in ts.range("by10", "-", "+", latest=True)][-1] == [40, 5.0]
    # A late sample lands in a closed bucket: the bucket is recomputed.
    ts.add("raw", 5, 100, on_duplicate="last")
    assert [list(s) for s in ts.range("by10", 0, 0)] == [[0, 109.0]]
    # by20's second bucket closes only once by10 closes a bucket past it.
    assert [list(s) for s in ts.range("by20", "-", "+")] == [[0, 109.0]]
    assert [list(s) for s in ts.range("by20", "-", "+", latest=True)] == [[0, 109.0], [20, 10.0]]
    assert ts_info(ts, "raw").rules in ([[b"by10", 10, b"SUM", 0]], {b"by10": [10, b"SUM", 0]})
    with pytest.raises(redis.ResponseError, match="already has a src rule"):
        ts.createrule("raw", "by10", "avg", 5)
    assert ts.deleterule("raw", "by10")
    assert ts_info(ts, "by10").source_key is None


def test_info_modules_names_timeseries(node):
    assert node.client().info("modules")["modules"][0]["name"] == "timeseries"


@pytest.fixture
def cluster(node_factory):
    return start_cluster(node_factory)


def series_view(nodes, key, **kw):
    def read(n):
        try:
            return [tuple(s) for s in n.client().ts().range(key, "-", "+", **kw)]
        except redis.ResponseError as e:
            return str(e)
    return [read(n) for n in nodes]


def agree(nodes, key, timeout=15.0, **kw):
    def same():
        views = series_view(nodes, key, **kw)
        return views[0] if all(v == views[0] for v in views) else None
    return wait_for(same, timeout, what=f"regions to agree on {key}")


def test_samples_from_every_region_merge(cluster):
    eu, us, ap = cluster
    eu.client().ts().create("room", labels={"site": "x"}, duplicate_policy="last")
    converged(cluster, ["room"])
    wait_for(lambda: all(n.client().exists("room") for n in cluster), what="the series everywhere")
    for i, n in enumerate(cluster):
        pipe = n.client().ts().pipeline(transaction=False)
        for t in range(i, 300, 3):
            pipe.add("room", t, t)
        pipe.execute()
    view = agree(cluster, "room")
    assert view == [(t, float(t)) for t in range(300)]
    for n in cluster:
        assert n.client().ts().info("room").labels == {"site": "x"}


@pytest.fixture
def slow_cluster(node_factory):
    return start_cluster(node_factory, "--wan-delay", "eu-us=1000,us-ap=1000,eu-ap=1000")


@pytest.mark.parametrize("policy,want", [("last", 3.0), ("first", 1.0), ("min", 1.0), ("max", 3.0), ("sum", 6.0), ("block", 1.0)])
def test_concurrent_samples_of_one_instant_resolve_by_the_policy_everywhere(slow_cluster, policy, want):
    eu, us, ap = slow_cluster
    key = f"c:{policy}"
    for n in slow_cluster:
        n.client().ts().create(key, duplicate_policy=policy)
    # Written a second apart by the clocks, all before any region hears of the others.
    for value, n in [(1, eu), (2, us), (3, ap)]:
        n.client().ts().add(key, 1000, value)
        time.sleep(0.01)
    # LAST/FIRST order the writes by stamp (eu wrote first, ap last); BLOCK keeps the first
    # across regions; MIN/MAX/SUM take every region's write.
    assert agree(slow_cluster, key, timeout=20) == [(1000, want)]


def test_late_samples_from_a_region_that_was_down_recompute_the_buckets_everywhere(cluster):
    eu, us, ap = cluster
    eu.client().ts().create("raw", labels={"group": "g"})
    eu.client().ts().create("avg10", labels={"group": "g-avg"})
    eu.client().ts().createrule("raw", "avg10", "avg", 10)
    wait_for(lambda: all(n.client().exists("avg10") for n in cluster), what="the rule everywhere")
    for t in range(0, 40):
        eu.client().ts().add("raw", t, 10)
    agree(cluster, "avg10")
    ap.kill9()
    wait_for(lambda: peer_state(eu, "ap-1") == "down", what="eu-1 to see ap-1 down")
    # Back, ap-1 writes a late sample into a closed bucket before it has caught up.
    eu.client().ts().add("raw", 41, 10)
    ap.start()
    ap.client().ts().add("raw", 5, 110, on_duplicate="last")
    wait_for(lambda: connected_peers(ap) == 2, what="ap-1 to rejoin")
    view = agree(cluster, "avg10", timeout=30)
    assert view == [(0, 20.0), (10, 10.0), (20, 10.0), (30, 10.0)]
    assert agree(cluster, "avg10", latest=True)[-1] == (40, 10.0)


def mrange_groups(ts, *args, **kw):
    """TS.MRANGE's groups as {name: [(ts, value), ...]}, whichever protocol."""
    reply = ts.mrange(*args, **kw)
    out = {}
    for item in (reply if isinstance(reply, list) else [reply]):
        for name, value in item.items():
            name = name if isinstance(name, str) else name.decode()
            out[name] = [tuple(s) for s in value[-1]]
    return out


def test_robust_and_weighted_reducers_fuse_a_group(ts):
    # Five sensors of one room; one reads wild; one is noisy.
    readings = {"s1": [20.0, 20.2], "s2": [21.0, 21.2], "s3": [22.0, 22.2], "s4": [19.0, 19.2],
                "s5": [500.0, 500.2]}
    for name, values in readings.items():
        ts.create(f"room1:{name}", labels={"room": "1"})
        for i, v in enumerate(values):
            ts.add(f"room1:{name}", 1000 * (i + 1), v)
    median = mrange_groups(ts, "-", "+", ["room=1"], groupby="room", reduce="median")
    assert median == {"room=1": [(1000, 21.0), (2000, 21.2)]}
    trimmed = mrange_groups(ts, "-", "+", ["room=1"], groupby="room", reduce="trimmed_mean")
    assert trimmed["room=1"][0] == (1000, 21.0)
    ts.create("room2:quiet", labels={"room": "2"})
    ts.create("room2:noisy", labels={"room": "2"})
    for i, (q, n) in enumerate([(9, 0), (11, 20), (10, 40)]):
        ts.add("room2:quiet", i, q)
        ts.add("room2:noisy", i, n)
    ivw = mrange_groups(ts, "-", "+", ["room=2"], groupby="room", reduce="ivw_mean")
    wq, wn = 1.5, 3.0 / 800.0
    assert ivw["room=2"][2][1] == pytest.approx((10 * wq + 40 * wn) / (wq + wn))


def test_a_fused_series_is_kept_for_a_group(ts):
    for name, values in {"a": [1, 3, 5], "b": [2, 4, 6], "c": [100, 100, 100]}.items():
        ts.create(f"g:{name}", labels={"group": "g"})
        for i, v in enumerate(values):
            ts.add(f"g:{name}", i * 10, v)
    assert ts.client.execute_command(
        "TS.FUSE", "g:fused", "AGGREGATION", "avg", "20", "REDUCE", "median", "FILTER", "group=g") in (b"OK", "OK", True)
    # Buckets of 20 ms: a = [2, 5], b = [3, 6], c = [100, 100]; the median of each bucket.
    assert [tuple(s) for s in ts.range("g:fused", "-", "+")] == [(0, 3.0), (20, 6.0)]
    ts.add("g:b", 25, 1000)  # a sample late into the second bucket moves it
    assert [tuple(s) for s in ts.range("g:fused", "-", "+")] == [(0, 3.0), (20, 100.0)]
    assert list(ts.get("g:fused")) == [20, 100.0]
    with pytest.raises(redis.ResponseError, match="failed parsing reducer"):
        ts.client.execute_command("TS.FUSE", "x", "AGGREGATION", "avg", "20", "REDUCE", "nope", "FILTER", "group=g")
    assert not ts.client.exists("x")


def test_a_fused_series_is_the_same_in_every_region(cluster):
    eu, us, ap = cluster
    for i, n in enumerate(cluster):
        n.client().ts().create(f"sensor:{i}", labels={"site": "plant"})
    eu.client().execute_command("TS.FUSE", "plant", "AGGREGATION", "avg", "1000", "REDUCE", "median",
                                "FILTER", "site=plant")
    for i, n in enumerate(cluster):
        pipe = n.client().ts().pipeline(transaction=False)
        for t in range(0, 5000, 100):
            pipe.add(f"sensor:{i}", t, 10 * i + t / 1000)
        pipe.execute()
    view = agree(cluster, "plant")
    assert view == [(b, 10 + b / 1000 + 0.45) for b in range(0, 5000, 1000)]


def http(node, method, path, body=None, auth=None):
    import base64
    import json as _json
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}", method=method,
                                 data=None if body is None else body.encode())
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, _json.load(resp)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, _json.loads(raw)
        except ValueError:
            return e.code, {"text": raw.decode(errors="replace")}


def test_http_posts_readings_and_reads_ranges(node):
    status, body = http(node, "POST", "/v1/ts/sensors:hall:d1:co2?labels=group=hall,device=d1",
                        '[{"ts": 1000, "value": 400}, {"ts": 2000, "value": 420}, {"ts": 3000, "value": 440}]')
    assert (status, body) == (200, {"stored": 3})
    assert http(node, "GET", "/v1/ts/sensors:hall:d1:co2") == (200, {"samples": [[1000, 400.0], [2000, 420.0], [3000, 440.0]]})
    assert http(node, "GET", "/v1/ts/sensors:hall:d1:co2?from=0&to=5000&aggregation=avg&bucket=2000") == (
        200, {"samples": [[0, 400.0], [2000, 430.0]]})
    ts = node.client().ts()
    assert ts.info("sensors:hall:d1:co2").labels == {"group": "hall", "device": "d1"}
    assert http(node, "POST", "/v1/ts/sensors:hall:d1:co2", "warm")[0] == 400
    assert http(node, "GET", "/v1/ts/missing")[0] == 404
    node.client().set("plain", "x")
    status, body = http(node, "POST", "/v1/ts/plain", "1")
    assert status == 422 and "not a TSDB key" in body["error"]
    assert node.client().get("plain") == b"x"


def test_http_series_routes_check_the_user_s_rights_on_the_key(node_factory):
    n = node_factory("--requirepass", "pw").start()
    r = redis.Redis(port=n.port, password="pw")
    r.acl_setuser("dev", enabled=True, passwords=["+devpw"], commands=["+ts.add", "+ts.range"],
                  keys=["sensors:a:*"])
    assert http(n, "POST", "/v1/ts/sensors:a:1", '{"ts": 1, "value": 1}')[0] == 401
    assert http(n, "POST", "/v1/ts/sensors:a:1", '{"ts": 1, "value": 1}', auth=("dev", "devpw"))[0] == 200
    assert http(n, "POST", "/v1/ts/sensors:b:1", '{"ts": 1, "value": 1}', auth=("dev", "devpw"))[0] == 403
    assert http(n, "GET", "/v1/ts/sensors:a:1", auth=("dev", "devpw")) == (200, {"samples": [[1, 1.0]]})
    # The device user may not read the node's status (INFO): the series routes need no more.
    assert http(n, "GET", "/v1/status", auth=("dev", "devpw"))[0] == 403
    assert not r.exists("sensors:b:1")


def test_buckets_turn_final_and_late_samples_revise_them(ts):
    now = int(time.time() * 1000)
    first = now - now % 1000 - 2000
    ts.create("src")
    ts.create("per_s")
    ts.client.execute_command("TS.CREATERULE", "src", "per_s", "AGGREGATION", "sum", "1000", "LATENESS", "2000")
    for t in range(first, now + 1, 100):
        ts.add("src", t, 1)

    def statuses():
        rows = ts.client.execute_command("TS.RANGE", "per_s", "-", "+", "WITHSTATUS")
        return {int(r[0]): (float(r[1]), int(r[2])) for r in rows}

    # Within a bucket's end plus the lateness, it is provisional; after, final.
    assert statuses()[first] == (10.0, 0)
    while time.time() * 1000 < first + 1000 + 2000 + 100:
        time.sleep(0.05)
    assert statuses()[first] == (10.0, 1)
    # A sample written now into the final bucket: merged, recomputed, and marked revised.
    ts.add("src", first + 550, 5)
    assert statuses()[first] == (15.0, 2)
    # A client without r.ts()'s TS.INFO parser, which keeps only RedisTimeSeries's fields.
    raw = redis.Redis(**{k: v for k, v in ts.client.connection_pool.connection_kwargs.items()
                         if k in ("host", "port", "protocol")})
    info = raw.execute_command("TS.INFO", "per_s")
    info = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
    info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
    assert info["revised"] == 1 and info["lateness"] == 2000
    assert abs(info["watermark"] - time.time() * 1000) < 5000
    assert info["finalThrough"] >= first + 1000
    with pytest.raises(redis.ResponseError, match="WITHSTATUS does not go with AGGREGATION"):
        ts.client.execute_command("TS.RANGE", "src", "-", "+", "WITHSTATUS", "AGGREGATION", "avg", "10")


def test_http_says_which_buckets_are_final(node):
    ts = node.client().ts()
    ts.create("raw")
    ts.create("agg")
    ts.createrule("raw", "agg", "avg", 10)
    for t in range(0, 35):
        ts.add("raw", t, t)
    status, body = http(node, "GET", "/v1/ts/agg?status")
    assert status == 200
    # Written now, long after their buckets' ends: late, so revised (backfilled data is late).
    assert body["samples"] == [[0, 4.5, "revised"], [10, 14.5, "revised"], [20, 24.5, "revised"]]
    now = int(time.time() * 1000)
    ts.add("raw", now, 1)
    status, body = http(node, "GET", f"/v1/ts/raw?status&from={now}")
    assert body["samples"] == [[now, 1.0, "provisional"]]


def cluster_view(node):
    import json as _json
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/v1/cluster", timeout=5) as resp:
        return _json.load(resp)


def test_the_watermark_follows_idle_regions_and_does_not_wait_for_a_down_one(cluster):
    eu, us, ap = cluster
    # Nobody writes: heartbeats move every region's watermark along all the same.
    def fresh(node):
        lag = time.time() * 1000 - cluster_view(node)["watermark_ms"]
        return lag < 3000
    for n in cluster:
        wait_for(lambda n=n: fresh(n), what=f"{n.node_id}'s watermark to follow the clock")
    ap.kill9()
    # While gossip still thinks ap-1 up, the watermark waits for it...
    time.sleep(1.5)
    view = cluster_view(eu)
    if not any(m["down"] for m in view["watermarks"]):
        assert time.time() * 1000 - view["watermark_ms"] > 1000
    # ...then ap-1 is reported down, left out, and the watermark moves on.
    wait_for(lambda: any(m["name"] == "ap-1" and m["down"] for m in cluster_view(eu)["watermarks"]),
             timeout=30, what="ap-1 reported down")
    wait_for(lambda: fresh(eu), what="eu-1's watermark to move on without ap-1")
    eu.client().ts().create("w")
    raw = eu.client().execute_command("TS.INFO", "w")
    fields = dict(zip(raw[::2], raw[1::2])) if isinstance(raw, list) else raw
    assert fields[b"watermarkExcludes"] == [b"ap-1"]


def test_querylabels_names_labels_and_values(ts):
    ts.create("q:1", labels={"room": "a", "kind": "temp"})
    ts.create("q:2", labels={"room": "b", "kind": "temp", "floor": "2"})
    ts.create("q:3", labels={"room": "c", "kind": "hum"})
    as_text = lambda got: {x.decode() if isinstance(x, bytes) else x for x in got}
    assert as_text(ts.querylabels()) == {"room", "kind", "floor"}
    assert as_text(ts.querylabels("room", ["kind=temp"])) == {"a", "b"}
    assert as_text(ts.querylabels(filters=["kind=hum"])) == {"room", "kind"}
    assert as_text(ts.querylabels("nope")) == set()


def test_read_pages_forward_and_blocks_until_samples_come(node):
    import threading
    ts = node.client(socket_timeout=10).ts()
    ts.create("feed")
    for t in (10, 20, 30):
        ts.add("feed", t, t)
    assert [list(s) for s in ts.read("feed", "-")] == [[10, 10.0], [20, 20.0], [30, 30.0]]
    assert [list(s) for s in ts.read("feed", 15, max_count=1)] == [[20, 20.0]]
    assert [list(s) for s in ts.read("feed", "+")] == [[30, 30.0]]
    # Blocked until two samples after 30 have come, written by another client meanwhile.
    def feed():
        time.sleep(0.3)
        w = node.client().ts()
        w.add("feed", 40, 40)
        time.sleep(0.1)
        w.add("feed", 50, 50)
    threading.Thread(target=feed).start()
    started = time.monotonic()
    got = ts.read("feed", 31, block_milliseconds=5000, block_min_count=2)
    assert [list(s) for s in got] == [[40, 40.0], [50, 50.0]]
    assert 0.3 < time.monotonic() - started < 4
    # Nothing comes: an empty answer at the timeout.
    started = time.monotonic()
    assert ts.read("feed", 100, block_milliseconds=300) == []
    assert time.monotonic() - started >= 0.29
    with pytest.raises(redis.ResponseError, match="does not exist"):
        ts.read("nothing", "-")
    # `$`: only what comes after the newest sample at the command's arrival, however many
    # wakes it takes (a sample at an older instant written meanwhile does not count).
    def feed_after():
        time.sleep(0.3)
        w = node.client().ts()
        w.add("feed", 45, 45, on_duplicate="last")
        time.sleep(0.1)
        w.add("feed", 60, 60)
        w.add("feed", 70, 70)
    threading.Thread(target=feed_after).start()
    got = ts.read("feed", "$", block_milliseconds=5000, block_min_count=2)
    assert [list(s) for s in got] == [[60, 60.0], [70, 70.0]]
    assert ts.read("feed", "$") == []  # without BLOCK nothing can have come yet
    # On a series not there yet, `$` waits for its first samples.
    threading.Thread(target=lambda: (time.sleep(0.2), node.client().ts().add("later", 5, 1))).start()
    assert [list(s) for s in ts.read("later", "$", block_milliseconds=5000)] == [[5, 1.0]]


def test_nrange_joins_explicit_series_on_time(ts):
    ts.create("n:1")
    ts.create("n:2")
    ts.madd([("n:1", 1000, 10), ("n:1", 2000, 12), ("n:2", 1000, 20), ("n:2", 3000, 25)])
    nan = float("nan")

    def same(got, want):
        flat = lambda rows: [(t, [("nan" if v != v else v) for v in vs]) for t, vs in rows]
        assert flat(got) == flat(want)

    same(ts.nrange(["n:1", "n:2"], "-", "+"), [[1000, [10, 20]], [2000, [12, nan]], [3000, [nan, 25]]])
    same(ts.nrevrange(["n:1", "n:2"], "-", "+", count=2), [[3000, [nan, 25]], [2000, [12, nan]]])
    same(ts.nrange(["n:2", "n:1", "n:2"], 1500, "+"), [[2000, [nan, 12, nan]], [3000, [25, nan, 25]]])
    # One aggregator list per key, a column per aggregator, one bucket duration for all.
    same(ts.nrange(["n:1", "n:2"], "-", "+", aggregators=["avg,max", "sum"], bucket_size_msec=2000),
         [[0, [10, 10, 20]], [2000, [12, 12, 25]]])
    same(ts.nrange(["n:1", "n:2"], "-", "+", filter_by_min_value=11, filter_by_max_value=21),
         [[1000, [nan, 20]], [2000, [12, nan]]])
    for args, error in [
        (["TS.NRANGE", 0, "n:1", "-", "+"], "numkeys"),
        (["TS.NRANGE", "x", "n:1", "-", "+"], "numkeys"),
        (["TS.NRANGE", 3, "n:1", "n:2", "-", "+"], "wrong number"),
        (["TS.NRANGE", 2, "n:1", "n:2", "-", "+", "AGGREGATION", "avg", 1000], "one aggregator list per key"),
        (["TS.NRANGE", 2, "n:1", "missing", "-", "+"], "does not exist"),
    ]:
        with pytest.raises(redis.ResponseError, match=error):
            ts.client.execute_command(*args)
