"""HTTP logs in with the Redis protocol's users: Basic, or a bearer token from ACL TOKEN; 401
with WWW-Authenticate without (or with wrong) credentials, 403 for a user without the right;
/metrics open with --metrics-public; HTTPS with --http-tls and the node's certificate."""

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
import redis

from conftest import BIN, free_port


def get(node, path, auth=None, scheme="http", cafile=None):
    """(status, headers, body) of GET `path`; `auth` is a full Authorization header value."""
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{node.http_port}{path}")
    if auth:
        request.add_header("Authorization", auth)
    context = None
    if scheme == "https":
        import ssl
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = False
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_http_wants_a_login_and_the_right_to_see_the_status(node_factory):
    node = node_factory("--requirepass", "pw").start()
    status, headers, _ = get(node, "/v1/status")
    assert status == 401
    challenges = headers.get_all("WWW-Authenticate")
    assert any(c.startswith("Basic realm=") for c in challenges) and any(c.startswith("Bearer") for c in challenges)
    assert get(node, "/v1/status", basic("default", "wrong"))[0] == 401
    assert get(node, "/v1/status", "Basic !!!")[0] == 401
    status, _, body = get(node, "/v1/status", basic("default", "pw"))
    assert status == 200 and json.loads(body)["node_id"] == node.node_id
    assert get(node, "/metrics")[0] == 401
    assert get(node, "/metrics", basic("default", "pw"))[0] == 200

    admin = node.client(password="pw", decode_responses=True)
    admin.execute_command("ACL", "SETUSER", "reader", "on", ">rpw", "+get", "~*")
    status, _, body = get(node, "/v1/status", basic("reader", "rpw"))
    assert status == 403 and b"NOPERM" in body
    # A bearer token an admin makes: a password of its user, kept as a digest.
    admin.execute_command("ACL", "SETUSER", "ops", "on", "+info", "-@all", "+info")
    token = admin.execute_command("ACL", "TOKEN", "ops")
    assert token.startswith("mt_")
    assert token not in " ".join(admin.execute_command("ACL", "LIST"))
    assert get(node, "/v1/status", f"Bearer {token}")[0] == 200
    wrong = token[:-1] + ("1" if token.endswith("0") else "0")  # one digit off, never the token
    assert get(node, "/v1/status", f"Bearer {wrong}")[0] == 401
    admin.execute_command("ACL", "SETUSER", "ops", f"<{token}")
    assert get(node, "/v1/status", f"Bearer {token}")[0] == 401
    with pytest.raises(redis.exceptions.ResponseError, match="does not exist"):
        admin.execute_command("ACL", "TOKEN", "nobody")
    # The refusals are in ACL LOG, as the Redis protocol's are.
    reasons = {entry["reason"] for entry in admin.acl_log()}
    assert {"auth", "command"} <= reasons


def test_a_node_without_a_password_serves_http_to_all_and_metrics_can_be_public(node_factory):
    open_node = node_factory(name="open").start()
    assert get(open_node, "/v1/status")[0] == 200
    locked = node_factory("--requirepass", "pw", "--metrics-public", name="locked").start()
    assert get(locked, "/metrics")[0] == 200
    assert get(locked, "/v1/status")[0] == 401


def test_https_with_the_node_certificate(node_factory, tmp_path):
    def cert(*args):
        subprocess.run([str(BIN), "cert", *args], check=True, capture_output=True, timeout=60)

    cert("create-ca", "--certs-dir", str(tmp_path / "ca"), "--ca-key", str(tmp_path / "safe" / "ca.key"))
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(tmp_path / "ca" / "ca.crt", certs / "ca.crt")
    cert("create-node", "n1", "127.0.0.1", "--certs-dir", str(certs), "--ca-key", str(tmp_path / "safe" / "ca.key"))
    node = node_factory("--certs-dir", str(certs), "--tls-port", str(free_port()), "--tls-auth-clients", "no",
                        "--http-tls", "--requirepass", "pw", node_id="n1").start()
    status, _, body = get(node, "/v1/status", basic("default", "pw"), scheme="https", cafile=str(certs / "ca.crt"))
    assert status == 200 and json.loads(body)["node_id"] == "n1"
    assert get(node, "/v1/status", scheme="https", cafile=str(certs / "ca.crt"))[0] == 401
    curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(certs / "ca.crt"),
                           "-u", "default:pw", f"https://127.0.0.1:{node.http_port}/v1/status"],
                          capture_output=True, text=True, timeout=20)
    assert curl.stdout == "200", curl.stderr
    plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{node.http_port}/v1/status"], capture_output=True, text=True, timeout=20)
    assert plain.stdout != "200"
