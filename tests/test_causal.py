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
