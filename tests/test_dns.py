"""Discovery by DNS (issue 15, item 3): every node runs an authoritative DNS server for the zone.
`<region>.<zone>` answers the region's ready nodes (failing over to the nearest region), the
zone's own name the nodes of the client's region, chosen by its address or the EDNS Client
Subnet its resolver sends, through the subnet table; A, SRV, SOA, TTL 5 s. Asked with `dig`
from network namespaces with addresses in different ranges of the table."""

import random
import socket
import subprocess

import pytest

from test_discovery import all_ready
from test_replication import wait_for

ZONE = "db.example"
DELAYS = "eu-us=40,us-ap=75,eu-ap=110"


@pytest.fixture
def hosts(make_hosts):
    # Hosts 0-2 run eu, us and ap; hosts 3 and 4 are clients in two ranges of the table.
    return make_hosts(5)


@pytest.fixture
def dns_cluster(node_factory, hosts):
    s = hosts.subnet
    table = f"{s}.4/32=us,{s}.5/32=ap,10.99.0.0/16=eu,10.99.7.0/24=ap"
    nodes = []
    for i, region in enumerate(["eu", "us", "ap"]):
        join = ["--join", f"{hosts.address(0)}:7381"] if i else []
        n = node_factory("--region", region, "--cluster-secret", "s3cret", "--insecure-peers", "--wan-delay", DELAYS,
                         "--dns-addr", f"{hosts.address(i)}:53", "--dns-zone", ZONE, "--dns-subnets", table,
                         *join, name=f"{region}-1", node_id=f"{region}-1", host=hosts.address(i),
                         netns=hosts.names[i])
        nodes.append(n.start())
    wait_for(lambda: all_ready(nodes), timeout=30, what="every node ready")
    return nodes


def dig(hosts, client, server, name, rtype="A", *extra):
    """`dig` run in host `client`'s namespace against host `server`'s DNS: the answer records
    as (name, ttl, type, data), and the status."""
    out = subprocess.run(["ip", "netns", "exec", hosts.names[client], "dig", f"@{hosts.address(server)}",
                          name, rtype, "+noall", "+answer", "+comments", "+tries=1", "+time=2", *extra],
                         capture_output=True, text=True, check=True).stdout
    status = next(line.split("status: ")[1].split(",")[0] for line in out.splitlines() if "status:" in line)
    records = []
    for line in out.splitlines():
        if line and not line.startswith(";"):
            fields = line.split()
            records.append((fields[0], int(fields[1]), fields[3], " ".join(fields[4:])))
    return status, records


def addresses(records):
    return sorted(r[3] for r in records if r[2] in ("A", "AAAA"))


def test_each_client_range_gets_its_regions_node_and_regions_fail_over(dns_cluster, hosts):
    eu, us, ap = dns_cluster
    ip = {n.node_id: n.host for n in dns_cluster}
    for server in range(3):
        # The zone's own name, by the client's address.
        status, records = dig(hosts, 3, server, ZONE)
        assert status == "NOERROR" and addresses(records) == [ip["us-1"]], records
        assert all(r[1] == 5 for r in records), "TTL is 5 s"
        assert addresses(dig(hosts, 4, server, ZONE)[1]) == [ip["ap-1"]]
        # A resolver's EDNS Client Subnet wins over its own address; the longest range wins.
        assert addresses(dig(hosts, 3, server, ZONE, "A", "+subnet=10.99.1.0/24")[1]) == [ip["eu-1"]]
        assert addresses(dig(hosts, 3, server, ZONE, "A", "+subnet=10.99.7.0/24")[1]) == [ip["ap-1"]]
        # Region names.
        for region, node in [("eu", "eu-1"), ("us", "us-1"), ("ap", "ap-1")]:
            assert addresses(dig(hosts, 3, server, f"{region}.{ZONE}")[1]) == [ip[node]]
    # A client in no range of the table gets the answering node's region.
    assert addresses(dig(hosts, 1, 1, ZONE)[1]) == [ip["us-1"]]
    assert addresses(dig(hosts, 2, 2, ZONE)[1]) == [ip["ap-1"]]
    # SRV: the port and the node's name, with its address.
    status, records = dig(hosts, 4, 0, f"_redis._tcp.{ZONE}", "SRV", "+additional")
    srv = [r for r in records if r[2] == "SRV"]
    assert srv == [(f"_redis._tcp.{ZONE}.", 5, "SRV", f"0 1 7379 ap-1.node.{ZONE}.")]
    assert (f"ap-1.node.{ZONE}.", 5, "A", ip["ap-1"]) in records
    # us fails: us's name and us's clients go to eu, us's nearest region, from every server.
    us.kill9()
    for server in (0, 2):
        wait_for(lambda s=server: addresses(dig(hosts, 3, s, f"us.{ZONE}")[1]) == [ip["eu-1"]], timeout=10,
                 what="us's name to move to eu")
        assert addresses(dig(hosts, 3, server, ZONE)[1]) == [ip["eu-1"]]
    # A node's own name answers while the node is linked (ready or not), and is gone with it.
    assert addresses(dig(hosts, 3, 0, f"eu-1.node.{ZONE}")[1]) == [ip["eu-1"]]
    assert dig(hosts, 3, 0, f"us-1.node.{ZONE}")[0] == "NXDOMAIN"


def test_other_names_types_and_garbage(dns_cluster, hosts):
    eu = dns_cluster[0]
    status, records = dig(hosts, 3, 0, f"nowhere.{ZONE}")
    assert status == "NXDOMAIN" and records == []
    assert dig(hosts, 3, 0, "example.com")[0] == "REFUSED"
    # No AAAA for nodes reached over IPv4: no data, not an error.
    assert dig(hosts, 3, 0, f"eu.{ZONE}", "AAAA") == ("NOERROR", [])
    status, records = dig(hosts, 3, 0, ZONE, "SOA")
    assert status == "NOERROR" and records[0][2] == "SOA"
    # Garbage gets FORMERR (or nothing) and the server answers on.
    rng = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for size in (3, 12, 40, 300):
            s.sendto(bytes(rng.randrange(256) for _ in range(size)), (eu.host, 53))
        s.sendto(b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x07broken", (eu.host, 53))
        reply = s.recv(512)
        while reply[:2] != b"\x12\x34":  # the answers to the random ones come first
            reply = s.recv(512)
        assert reply[3] & 0x0F == 1, "FORMERR"
    assert dig(hosts, 3, 0, f"eu.{ZONE}")[0] == "NOERROR"
