"""Each node measures the round trip to every peer it has a link with (pings answered by
pongs, on the node's own clock): under the simulated WAN delay the figures INFO replication
and /v1/status show are within 10% (or 5 ms) of the configured round trips (issue 15, item 1)."""

import time

from test_replication import http_status, start_cluster, wait_for

ONE_WAY_MS = {("eu", "us"): 40, ("us", "ap"): 75, ("eu", "ap"): 110}


def configured_rtt(a, b):
    return 2 * ONE_WAY_MS.get((a, b), ONE_WAY_MS.get((b, a)))


def test_round_trips_under_wan_delay_are_measured_within_ten_percent(node_factory):
    delays = ",".join(f"{a}-{b}={ms}" for (a, b), ms in ONE_WAY_MS.items())
    nodes = start_cluster(node_factory, "--wan-delay", delays)

    def measured(node):
        out = {}
        for v in node.client().info("replication").values():
            if isinstance(v, dict) and "rtt_ms" in v:
                out[v["region"]] = v["rtt_ms"]
        return out

    # The estimate is the smoothed minimum of the recent pings (one a second).
    wait_for(lambda: all(len(measured(n)) == 2 and "-" not in measured(n).values() for n in nodes),
             timeout=20, what="every node to measure both peers")
    time.sleep(4)
    for n in nodes:
        me = http_status(n)["region"]
        for region, rtt in measured(n).items():
            want = configured_rtt(me, region)
            print(f"{me}->{region}: measured {rtt} ms, configured {want} ms")
            assert abs(float(rtt) - want) <= max(0.1 * want, 5), f"{me}->{region}: {rtt} ms, configured {want}"
        for peer in http_status(n)["cluster"]:
            want = configured_rtt(me, peer["region"])
            assert abs(peer["rtt_ms"] - want) <= max(0.1 * want, 5), (me, peer)
