"""Causal tokens (issue 15, item 5): a client writes at one node, takes MERIDIAN TOKEN, moves
to another node a second of WAN away, and MERIDIAN WAITFOR there returns once that node holds
the write, so the client reads it (read-your-writes across the move); a timeout answers
-TRYAGAIN, never waits without bound; bad tokens and timeouts are refused."""

import time

import pytest
import redis

from test_replication import slow_cluster  # noqa: F401


def test_a_token_carried_to_another_region_gives_read_your_writes(slow_cluster):
    eu, us, _ = slow_cluster
    c = eu.client(decode_responses=True)
    c.set("profile", "v2")
    token = c.execute_command("MERIDIAN", "TOKEN")
    assert token.startswith("ct1:")
    other = us.client(decode_responses=True)
    # A second of WAN delay: not there yet, and a short wait says so.
    assert other.get("profile") is None
    with pytest.raises(redis.exceptions.TryAgainError, match="not yet applied"):
        other.execute_command("MERIDIAN", "WAITFOR", token, 50)
    started = time.monotonic()
    assert other.execute_command("MERIDIAN", "WAITFOR", token, 5000) == "OK"
    waited = time.monotonic() - started
    assert other.get("profile") == "v2"
    assert 0.5 < waited < 4, waited
    # A token the node already holds answers at once; monotonic reads: us's own token covers eu's.
    assert other.execute_command("MERIDIAN", "WAITFOR", token, 1) == "OK"
    assert c.execute_command("MERIDIAN", "WAITFOR", other.execute_command("MERIDIAN", "TOKEN"), 5000) == "OK"


def test_bad_tokens_and_timeouts_are_refused(slow_cluster):
    c = slow_cluster[0].client(decode_responses=True)
    token = c.execute_command("MERIDIAN", "TOKEN")
    for bad_token, timeout, error in [("nonsense", 10, "invalid token"), ("ct1:zz-1", 10, "invalid token"),
                                      (token, 0, "timeout must be"), (token, -5, "timeout must be"),
                                      (token, "soon", "timeout must be"), (token, 3_600_001, "timeout must be")]:
        with pytest.raises(redis.exceptions.ResponseError, match=error):
            c.execute_command("MERIDIAN", "WAITFOR", bad_token, timeout)
    with pytest.raises(redis.exceptions.ResponseError, match="Try MERIDIAN HELP"):
        c.execute_command("MERIDIAN", "NOPE")


def test_http_answers_carry_the_token_and_wait_for_one_sent_back(slow_cluster):
    """Every HTTP answer carries Meridian-Token; a request that sends one is answered once the
    node holds that much (503 with Retry-After at Meridian-Wait-Ms, never stale); bad values
    are 400s."""
    import urllib.error
    import urllib.request

    eu, us, _ = slow_cluster
    eu.client().set("profile", "v3")

    def get(node, **headers):
        request = urllib.request.Request(f"http://127.0.0.1:{node.http_port}/v1/status", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.headers
        except urllib.error.HTTPError as e:
            return e.code, e.headers

    status, headers = get(eu)
    token = headers["Meridian-Token"]
    assert status == 200 and token.startswith("ct1:")
    assert token == eu.client().execute_command("MERIDIAN", "TOKEN").decode()
    status, headers = get(us, **{"Meridian-Token": token, "Meridian-Wait-Ms": "50"})
    assert status == 503 and headers["Retry-After"] == "1"
    assert us.client().get("profile") is None
    status, headers = get(us, **{"Meridian-Token": token, "Meridian-Wait-Ms": "5000"})
    assert status == 200 and us.client().get("profile") == b"v3"
    assert headers["Meridian-Token"].startswith("ct1:")
    for bad in [{"Meridian-Token": "nonsense"}, {"Meridian-Token": token, "Meridian-Wait-Ms": "0"},
                {"Meridian-Token": token, "Meridian-Wait-Ms": "soon"}]:
        assert get(us, **bad)[0] == 400
