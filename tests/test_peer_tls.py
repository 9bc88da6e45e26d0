"""Mutual TLS between nodes (`--certs-dir`), with certificates from `meridian cert`: a cluster
replicates over it; openssl without a certificate, or with TLS 1.2, and a node of another CA
are refused; certificates reload on SIGHUP under load without dropping a link. (A stolen
certificate posing as another node and an expired one are refused in
crates/node/tests/peer_tls.rs, where the test can present what a real node refuses to start
with.)"""

import shutil
import signal
import subprocess
import threading
import time

from conftest import BIN
from test_replication import connected_peers, converged, metric, wait_for

REGIONS = ["eu", "us", "ap"]


def cert(*args, check=True):
    return subprocess.run([str(BIN), "cert", *args], capture_output=True, text=True, timeout=60, check=check)


def make_ca(base, name="ca"):
    """A CA: its certificate in base/<name>/ca.crt, its key in base/<name>-safe/ca.key."""
    cert("create-ca", "--certs-dir", str(base / name), "--ca-key", str(base / f"{name}-safe" / "ca.key"))
    return base / name


def node_certs(base, ca_dir, node_id, ca_name="ca"):
    """A node's certs directory, as an operator makes it: the CA's certificate copied in,
    then `create-node` with the CA key."""
    d = base / f"certs-{node_id}"
    d.mkdir()
    shutil.copy(ca_dir / "ca.crt", d / "ca.crt")
    cert("create-node", node_id, "127.0.0.1", "localhost", "--certs-dir", str(d),
         "--ca-key", str(base / f"{ca_name}-safe" / "ca.key"))
    return d


def start_tls_cluster(node_factory, base):
    ca = make_ca(base)
    nodes = []
    for region in REGIONS:
        node_id = f"{region}-1"
        join = ["--join", f"127.0.0.1:{nodes[0].peer_port}"] if nodes else []
        n = node_factory("--region", region, "--certs-dir", str(node_certs(base, ca, node_id)), *join,
                         name=node_id, node_id=node_id)
        nodes.append(n.start())
    for n in nodes:
        wait_for(lambda n=n: connected_peers(n) == 2, what=f"{n.node_id} to see both peers over TLS")
    return ca, nodes


def s_client(port, *args, until_closed=True):
    """openssl s_client to `port`. `until_closed`: read until the node closes, so it reports
    what the node answered to its certificate (TLS 1.3 checks it after the client is done)."""
    wait = ["-ign_eof"] if until_closed else []
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *wait, *args],
                          input="", capture_output=True, text=True, errors="replace", timeout=20)


def served_fingerprint(node, certs):
    """The SHA-256 fingerprint of the certificate the node's peer port presents."""
    out = s_client(node.peer_port, "-cert", str(certs / "node.crt"), "-key", str(certs / "node.key"),
                   until_closed=False)
    pem = out.stdout[out.stdout.index("-----BEGIN CERTIFICATE-----"):out.stdout.index("-----END CERTIFICATE-----") + 25]
    return fingerprint_of(pem)


def fingerprint_of(pem):
    return subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_a_cluster_replicates_over_mutual_tls_and_refuses_strangers(node_factory, tmp_path):
    ca, (eu, us, ap) = start_tls_cluster(node_factory, tmp_path)
    eu.client().set("greeting", "over tls")
    us.client().incr("count")
    assert converged([eu, us, ap], ["greeting", "count"]) == {"greeting": b"over tls", "count": b"1"}

    listing = cert("list", "--certs-dir", str(tmp_path / "certs-eu-1")).stdout
    assert "eu-1.node.meridian" in listing and "IP:127.0.0.1" in listing, listing

    # openssl without a certificate: the peer port wants one of the CA's.
    failures = metric(eu, "meridian_peer_handshake_failures_total")
    out = s_client(eu.peer_port, "-CAfile", str(ca / "ca.crt"))
    assert "certificate required" in out.stdout + out.stderr, out.stdout + out.stderr
    # TLS 1.2, even with a good certificate: peers speak TLS 1.3 only.
    certs = tmp_path / "certs-us-1"
    out = s_client(eu.peer_port, "-tls1_2", "-cert", str(certs / "node.crt"), "-key", str(certs / "node.key"))
    assert out.returncode != 0, out.stdout
    wait_for(lambda: metric(eu, "meridian_peer_handshake_failures_total") >= failures + 2,
             what="the refused handshakes to be counted")

    # A node whose certificate is another CA's never links with the cluster.
    other_ca = make_ca(tmp_path, "other")
    stranger = node_factory("--region", "xx", "--certs-dir",
                            str(node_certs(tmp_path, other_ca, "xx-1", ca_name="other")),
                            "--join", f"127.0.0.1:{eu.peer_port}", name="xx-1", node_id="xx-1").start()
    time.sleep(3)
    assert connected_peers(stranger) == 0
    assert all(connected_peers(n) == 2 for n in (eu, us, ap))
    stranger.client().set("intruder", "1")
    time.sleep(1)
    assert eu.client().get("intruder") is None


def test_a_node_refuses_to_start_with_certificates_that_cannot_work(node_factory, tmp_path):
    ca = make_ca(tmp_path)
    certs = node_certs(tmp_path, ca, "eu-1")
    # Another node's certificate.
    wrong = subprocess.run([str(BIN), "server", "--node-id", "us-1", "--certs-dir", str(certs),
                            "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=30)
    assert wrong.returncode != 0 and 'not a certificate of node "us-1"' in wrong.stderr, wrong.stderr
    # A CA that did not sign it.
    shutil.copy(make_ca(tmp_path, "other") / "ca.crt", certs / "ca.crt")
    foreign = subprocess.run([str(BIN), "server", "--node-id", "eu-1", "--certs-dir", str(certs),
                              "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=30)
    assert foreign.returncode != 0 and "does not verify against" in foreign.stderr, foreign.stderr
    # Nothing is overwritten.
    again = cert("create-node", "eu-1", "127.0.0.1", "--certs-dir", str(certs),
                 "--ca-key", str(tmp_path / "ca-safe" / "ca.key"), check=False)
    assert again.returncode != 0 and "exists: not overwriting it" in again.stderr


def test_certificates_reload_on_sighup_under_load_without_dropping_a_link(node_factory, tmp_path):
    ca = make_ca(tmp_path)
    eu_certs, us_certs = node_certs(tmp_path, ca, "eu-1"), node_certs(tmp_path, ca, "us-1")
    eu = node_factory("--region", "eu", "--certs-dir", str(eu_certs), name="eu-1", node_id="eu-1").start()
    us = node_factory("--region", "us", "--certs-dir", str(us_certs), "--join", f"127.0.0.1:{eu.peer_port}",
                      name="us-1", node_id="us-1").start()
    wait_for(lambda: connected_peers(eu) == 1 and connected_peers(us) == 1, what="the link")
    before = served_fingerprint(eu, us_certs)
    opened = (metric(eu, "meridian_peer_sessions_opened_total"), metric(us, "meridian_peer_sessions_opened_total"))

    written, errors, stop = [], [], threading.Event()

    def writer():
        c = eu.client()
        i = 0
        while not stop.is_set():
            try:
                c.set(f"w{i}", i)
                written.append(i)
            except Exception as e:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(e)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.5)
        # A renewed certificate for eu-1 (a new key), as an operator renews it, then SIGHUP.
        (eu_certs / "node.crt").rename(tmp_path / "old-node.crt")
        (eu_certs / "node.key").rename(tmp_path / "old-node.key")
        cert("create-node", "eu-1", "127.0.0.1", "--certs-dir", str(eu_certs),
             "--ca-key", str(tmp_path / "ca-safe" / "ca.key"))
        eu.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded certificates" in eu.log.read_text(), what="the reload")
        time.sleep(1.5)
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:3]
    assert len(written) > 100
    # New connections get the new certificate; the established link was never dropped.
    after = served_fingerprint(eu, us_certs)
    assert after != before
    assert after == fingerprint_of((eu_certs / "node.crt").read_text())
    assert (metric(eu, "meridian_peer_sessions_opened_total"),
            metric(us, "meridian_peer_sessions_opened_total")) == opened
    keys = [f"w{i}" for i in (0, len(written) // 2, len(written) - 1)]
    converged([eu, us], keys)

    # A reload that cannot work (a key that is not the certificate's) keeps the old files in use.
    (eu_certs / "node.key").unlink()
    shutil.copy(tmp_path / "old-node.key", eu_certs / "node.key")
    eu.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "kept the old certificates" in eu.log.read_text(), what="the refused reload")
    assert served_fingerprint(eu, us_certs) == after
    eu.client().set("still", "replicating")
    converged([eu, us], ["still"])


def test_the_tls_port_serves_the_node_certificate_to_clients_of_the_ca(node_factory, tmp_path):
    """With --certs-dir, --tls-port alone serves node.crt and wants client certificates of the
    cluster CA, which `meridian cert create-client` makes."""
    from conftest import free_port

    ca = make_ca(tmp_path)
    certs = node_certs(tmp_path, ca, "eu-1")
    cert("create-client", "alice", "--certs-dir", str(ca), "--ca-key", str(tmp_path / "ca-safe" / "ca.key"))
    port = free_port()
    node_factory("--certs-dir", str(certs), "--tls-port", str(port), name="eu-1", node_id="eu-1").start()
    cli = ["redis-cli", "-p", str(port), "--tls", "--cacert", str(ca / "ca.crt")]
    ok = subprocess.run([*cli, "--cert", str(ca / "client.alice.crt"), "--key", str(ca / "client.alice.key"),
                         "PING"], capture_output=True, text=True, timeout=20)
    assert ok.stdout.strip() == "PONG", ok.stdout + ok.stderr
    refused = subprocess.run([*cli, "PING"], capture_output=True, text=True, timeout=20)
    assert "PONG" not in refused.stdout


def test_a_node_can_serve_clients_over_tls_only(tmp_path):
    """--resp-addr with port 0 and --tls-port: no plain port, as Redis's `port 0`."""
    from conftest import free_port

    ca = make_ca(tmp_path)
    certs = node_certs(tmp_path, ca, "eu-1")
    port, http = free_port(), free_port()
    log = open(tmp_path / "tls-only.log", "wb")
    proc = subprocess.Popen([str(BIN), "server", "--node-id", "eu-1", "--certs-dir", str(certs),
                             "--data-dir", str(tmp_path / "d"), "--resp-addr", "127.0.0.1:0",
                             "--tls-port", str(port), "--tls-auth-clients", "no",
                             "--http-addr", f"127.0.0.1:{http}", "--peer-addr", f"127.0.0.1:{free_port()}"],
                            stderr=log)
    try:
        cli = ["redis-cli", "-p", str(port), "--tls", "--cacert", str(ca / "ca.crt"), "PING"]
        wait_for(lambda: subprocess.run(cli, capture_output=True, text=True).stdout.strip() == "PONG",
                 what="the TLS port")
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    refused = subprocess.run([str(BIN), "server", "--resp-addr", "127.0.0.1:0", "--data-dir", str(tmp_path / "e")],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "--tls-port" in refused.stderr
