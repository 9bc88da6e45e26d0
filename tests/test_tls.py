"""RESP over TLS (`--tls-port`): real clients (redis-cli --tls, redis-py's ssl, openssl s_client)
against a node whose certificates openssl makes here: a CA, the node's certificate, a client's,
and a client certificate from another CA."""

import subprocess

import pytest
import redis

from conftest import BIN, free_port


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(dir, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=dir)


def issue(dir, ca, name, *san):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=dir)
    ext = dir / f"{name}.ext"
    ext.write_text(f"subjectAltName={','.join(san)}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "1", "-extfile", ext.name, "-out", f"{name}.crt", cwd=dir)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d, "ca")
    issue(d, "ca", "node", "IP:127.0.0.1", "DNS:localhost")
    issue(d, "ca", "client")
    make_ca(d, "other-ca")
    issue(d, "other-ca", "stranger")
    return d


def tls_node(node_factory, pki, *extra, name="data"):
    port = free_port()
    node = node_factory("--tls-port", str(port), "--tls-cert-file", str(pki / "node.crt"),
                        "--tls-key-file", str(pki / "node.key"), "--tls-ca-cert-file", str(pki / "ca.crt"),
                        *extra, name=name).start()
    node.tls_port = port
    return node


def tls_client(node, pki, cert="client", **kw):
    files = {"ssl_certfile": str(pki / f"{cert}.crt"), "ssl_keyfile": str(pki / f"{cert}.key")} if cert else {}
    return redis.Redis(port=node.tls_port, ssl=True, ssl_ca_certs=str(pki / "ca.crt"), socket_timeout=10,
                       decode_responses=True, **files, **kw)


def s_client(port, pki, *args):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki / "ca.crt"),
                           "-cert", str(pki / "client.crt"), "-key", str(pki / "client.key"), *args],
                          input="PING\r\n", capture_output=True, text=True, timeout=20)


def test_clients_speak_resp_over_tls_with_a_certificate_from_the_ca(node_factory, pki):
    node = tls_node(node_factory, pki)
    r = tls_client(node, pki)
    assert r.set("k", "over tls") and r.get("k") == "over tls"
    assert node.client(decode_responses=True).get("k") == "over tls"  # one keyspace, two ports
    cli = subprocess.run(["redis-cli", "-p", str(node.tls_port), "--tls", "--cacert", str(pki / "ca.crt"),
                          "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key"), "GET", "k"],
                         capture_output=True, text=True, timeout=10)
    assert cli.stdout.strip() == "over tls"
    # TLS 1.2 and 1.3 are spoken; 1.1 is not (allowed on the openssl side for the attempt).
    assert "TLSv1.2" in s_client(node.tls_port, pki, "-tls1_2").stdout
    assert "TLSv1.3" in s_client(node.tls_port, pki, "-tls1_3").stdout
    old = s_client(node.tls_port, pki, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0 and "+PONG" not in old.stdout


def test_clients_without_a_certificate_of_the_ca_are_refused(node_factory, pki):
    node = tls_node(node_factory, pki)
    with pytest.raises(redis.exceptions.ConnectionError):
        tls_client(node, pki, cert=None).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        tls_client(node, pki, cert="stranger").ping()
    # The node keeps serving everyone else.
    assert tls_client(node, pki).ping()
    optional = tls_node(node_factory, pki, "--tls-auth-clients", "optional", name="optional")
    assert tls_client(optional, pki, cert=None).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        tls_client(optional, pki, cert="stranger").ping()


def test_tls_and_passwords_together(node_factory, pki):
    node = tls_node(node_factory, pki, "--tls-auth-clients", "no", "--requirepass", "pw")
    with pytest.raises(redis.exceptions.AuthenticationError):
        tls_client(node, pki, cert=None, protocol=2).get("k")
    assert tls_client(node, pki, cert=None, password="pw").ping()


def test_tls_settings_that_cannot_work_stop_the_node_with_the_reason(tmp_path, pki):
    def start(*args):
        return subprocess.run([str(BIN), "server", "--node-id", "x", "--data-dir", str(tmp_path / "d"),
                               "--resp-addr", f"127.0.0.1:{free_port()}", "--http-addr", f"127.0.0.1:{free_port()}",
                               "--peer-addr", f"127.0.0.1:{free_port()}", *args],
                              capture_output=True, text=True, timeout=20)
    missing = start("--tls-port", str(free_port()), "--tls-cert-file", str(pki / "nope.crt"),
                    "--tls-key-file", str(pki / "node.key"), "--tls-auth-clients", "no")
    assert missing.returncode != 0 and "nope.crt" in missing.stderr
    no_ca = start("--tls-port", str(free_port()), "--tls-cert-file", str(pki / "node.crt"),
                  "--tls-key-file", str(pki / "node.key"))
    assert no_ca.returncode != 0 and "--tls-ca-cert-file" in no_ca.stderr
    mismatched = start("--tls-port", str(free_port()), "--tls-cert-file", str(pki / "node.crt"),
                       "--tls-key-file", str(pki / "client.key"), "--tls-auth-clients", "no")
    assert mismatched.returncode != 0 and "--tls-key-file" in mismatched.stderr
