"""Who may talk to a node: the default user's password (`--requirepass`), logging in with
AUTH and HELLO as Redis clients do, what a client may send before it logs in, and protected
mode (no password: loopback clients only)."""

import socket
import subprocess

import pytest
import redis

PASSWORD = "s3cret-pw"


@pytest.fixture
def locked(node_factory):
    return node_factory("--requirepass", PASSWORD).start()


def raw(port, payload: bytes, host="127.0.0.1") -> bytes:
    """Sends `payload` on a fresh connection; answers everything the node wrote until it
    closed the connection or went quiet."""
    with socket.create_connection((host, port), timeout=0.5) as s:
        s.sendall(payload)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except socket.timeout:
            pass
        return out


def test_a_client_logs_in_before_anything_else(locked):
    # redis-py 8 opens with HELLO 3: refused as Redis refuses it, with how to log in.
    with pytest.raises(redis.exceptions.AuthenticationError, match="HELLO <proto> AUTH <user> <pass>"):
        locked.client().set("k", "v")
    with pytest.raises(redis.exceptions.AuthenticationError, match="Authentication required"):
        locked.client(protocol=2).set("k", "v")
    wrong = b"GET k\r\nAUTH not-it\r\nAUTH nobody %s\r\nAUTH default %s\r\nGET k\r\n" % (
        PASSWORD.encode(), PASSWORD.encode())
    assert raw(locked.port, wrong) == (b"-NOAUTH Authentication required.\r\n"
                                       + b"-WRONGPASS invalid username-password pair or user is disabled.\r\n" * 2
                                       + b"+OK\r\n$-1\r\n")
    # redis-py on RESP2 logs in with AUTH <password>, on RESP3 with HELLO 3 AUTH default ...
    r2 = locked.client(password=PASSWORD, decode_responses=True)
    assert r2.set("k", "v") and r2.get("k") == "v"
    r3 = locked.client(username="default", password=PASSWORD, protocol=3, decode_responses=True)
    assert r3.get("k") == "v"
    assert r3.execute_command("ACL", "WHOAMI") == "default"
    with pytest.raises(redis.exceptions.AuthenticationError):
        locked.client(password="wrong").ping()
    # HELLO without AUTH while logged out is refused, and says how to log in.
    assert b"-NOAUTH HELLO must be called with the client already authenticated" in raw(
        locked.port, b"HELLO 3\r\n")
    # RESET logs the connection out again.
    assert raw(locked.port, b"AUTH %s\r\nRESET\r\nGET k\r\n" % PASSWORD.encode()) == (
        b"+OK\r\n+RESET\r\n-NOAUTH Authentication required.\r\n")


def test_the_password_is_kept_as_a_digest_and_hidden_from_monitors(locked):
    r = locked.client(password=PASSWORD, decode_responses=True)
    [line] = r.execute_command("ACL", "LIST")
    assert PASSWORD not in line and line.startswith("user default on #")
    assert r.execute_command("ACL", "USERS") == ["default"]
    r.config_set("slowlog-log-slower-than", 0)
    locked.client(password=PASSWORD).ping()
    logged = [e["command"] for e in r.slowlog_get(-1)]
    logged = [c.decode() if isinstance(c, bytes) else c for c in logged]
    # redis-py 8 logs in with HELLO 3 AUTH default <password>: logged, the password redacted.
    assert any(c.startswith("HELLO") and "(redacted)" in c for c in logged)
    assert not any(PASSWORD in c for c in logged)


def test_redis_cli_logs_in_with_a_password_or_a_user(locked):
    def cli(*args):
        return subprocess.run(["redis-cli", "-p", str(locked.port), "--no-auth-warning", *args],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    assert cli("-a", PASSWORD, "SET", "k", "v") == "OK"
    assert cli("--user", "default", "--pass", PASSWORD, "GET", "k") == "v"
    assert "NOAUTH" in cli("GET", "k")


def test_before_logging_in_a_client_sends_small_frames_only(locked):
    eleven = b"*11\r\n" + b"$1\r\na\r\n" * 11
    assert raw(locked.port, eleven) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    big = b"*2\r\n$4\r\nAUTH\r\n$20000\r\n" + b"x" * 20000 + b"\r\n"
    assert raw(locked.port, big) == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    # Once logged in, the same pipeline may carry what a logged-in client may send.
    value = b"v" * 20000
    pipeline = (b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(PASSWORD), PASSWORD.encode())
                + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20000\r\n" + value + b"\r\n"
                + b"*2\r\n$6\r\nSTRLEN\r\n$1\r\nk\r\n")
    assert raw(locked.port, pipeline) == b"+OK\r\n+OK\r\n:20000\r\n"


def local_address() -> str:
    """An address of this machine outside loopback (the one a route out leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # nothing is sent
        return s.getsockname()[0]


def on_every_interface(node_factory, name, *extra):
    node = node_factory("--cluster-secret", "s", "--insecure-peers", *extra, name=name, node_id=name, host="0.0.0.0")
    node.extra += ["--advertise-addr", f"127.0.0.1:{node.peer_port}"]
    return node.start()


def test_protected_mode_refuses_clients_outside_loopback_until_a_password_is_set(node_factory):
    outside = local_address()
    if outside.startswith("127."):
        pytest.skip("this machine has no address outside loopback")
    open_node = on_every_interface(node_factory, "open")
    assert raw(open_node.port, b"PING\r\n", host=outside).startswith(b"-DENIED Meridian is running in protected mode")
    assert raw(open_node.port, b"PING\r\n") == b"+PONG\r\n"  # loopback is served
    unprotected = on_every_interface(node_factory, "unprotected", "--protected-mode", "no")
    assert raw(unprotected.port, b"PING\r\n", host=outside) == b"+PONG\r\n"
    with_password = on_every_interface(node_factory, "locked", "--requirepass", PASSWORD)
    assert raw(with_password.port, b"PING\r\n", host=outside) == b"-NOAUTH Authentication required.\r\n"


def test_users_run_the_commands_keys_and_channels_their_rules_allow(node):
    admin = node.client(decode_responses=True)
    assert admin.execute_command("ACL", "SETUSER", "alice", "on", ">pw", "~cache:*", "%R~ro:*", "&news.*",
                                 "+@read", "-get", "+set", "+client|id", "+acl|whoami")
    alice = node.client(username="alice", password="pw", decode_responses=True)
    assert alice.execute_command("ACL", "WHOAMI") == "alice"
    assert alice.set("cache:1", "v")
    assert alice.mget("cache:1", "ro:1") == ["v", None]
    assert isinstance(alice.client_id(), int)
    denied = redis.exceptions.NoPermissionError
    with pytest.raises(denied, match="no permissions to run the 'get' command"):
        alice.get("cache:1")
    with pytest.raises(denied, match="no permissions to access one of the keys"):
        alice.set("ro:1", "v")  # a read-only pattern
    with pytest.raises(denied, match="no permissions to access one of the keys"):
        alice.set("other", "v")
    with pytest.raises(denied, match="no permissions to run the 'client|list' command"):
        alice.client_list()
    with pytest.raises(denied, match="'publish' command"):
        alice.publish("news.today", "x")
    admin.execute_command("ACL", "SETUSER", "alice", "+publish")
    assert alice.publish("news.today", "x") == 0
    with pytest.raises(denied, match="one of the channels"):
        alice.publish("sports", "x")
    # Refused inside MULTI: the whole transaction is refused at EXEC.
    with pytest.raises((denied, redis.exceptions.ExecAbortError)):
        with alice.pipeline(transaction=True) as p:
            p.set("cache:2", "v").set("other", "v").execute()
    assert admin.get("cache:2") is None
    # Rules are all applied or none; the bad one is named.
    with pytest.raises(redis.exceptions.ResponseError, match="modifier 'bogus': Syntax error"):
        admin.execute_command("ACL", "SETUSER", "alice", "+get", "bogus")
    with pytest.raises(denied):
        alice.get("cache:1")
    [line] = [u for u in admin.execute_command("ACL", "LIST") if u.startswith("user alice")]
    assert line.startswith("user alice on #") and "pw" not in line.split("#")[1][:64] and \
        line.endswith("~cache:* %R~ro:* resetchannels &news.* -@all +@read -get +set +client|id +acl|whoami +publish")
    info = admin.execute_command("ACL", "GETUSER", "alice")
    assert info["commands"] == "-@all +@read -get +set +client|id +acl|whoami +publish" and info["keys"] == "~cache:* %R~ro:*"
    assert admin.execute_command("ACL", "DRYRUN", "alice", "set", "cache:9", "v") == "OK"
    assert "no permissions to run the 'get' command" in admin.execute_command("ACL", "DRYRUN", "alice", "get", "k")
    assert "read" in admin.execute_command("ACL", "CAT") and "get" in admin.execute_command("ACL", "CAT", "read")
    assert len(admin.execute_command("ACL", "GENPASS")) == 64
    # A deleted user's clients are disconnected; default cannot be deleted.
    assert admin.execute_command("ACL", "DELUSER", "alice", "nobody") == 1
    with pytest.raises(redis.exceptions.ConnectionError):
        alice.set("cache:1", "v")
    with pytest.raises(redis.exceptions.ResponseError, match="'default' user cannot be removed"):
        admin.execute_command("ACL", "DELUSER", "default")
    # A disabled user cannot log in.
    admin.execute_command("ACL", "SETUSER", "bob", "off", ">pw", "+@all", "~*")
    with pytest.raises(redis.exceptions.AuthenticationError, match="user is disabled"):
        node.client(username="bob", password="pw", protocol=2).ping()


def test_users_come_from_the_acl_file_and_acl_save_keeps_them_across_a_restart(node_factory, tmp_path):
    import os
    import stat

    from conftest import BIN, free_port

    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user default on >admin-pw ~* &* +@all\nuser reader on >r-pw ~* -@all +@read\n")
    node = node_factory("--aclfile", str(aclfile)).start()
    admin = node.client(username="default", password="admin-pw", decode_responses=True)
    reader = node.client(username="reader", password="r-pw", decode_responses=True)
    assert admin.set("k", "v") and reader.get("k") == "v"
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.set("k", "w")
    admin.execute_command("ACL", "SETUSER", "writer", "on", ">w-pw", "~*", "+@write")
    assert admin.execute_command("ACL", "SAVE") == "OK"
    saved = aclfile.read_text()
    assert "user writer on #" in saved and "w-pw" not in saved and "admin-pw" not in saved
    assert stat.S_IMODE(os.stat(aclfile).st_mode) == 0o600
    node.stop()
    node.start()
    assert node.client(username="writer", password="w-pw").set("k", "w")
    # A wrong line: ACL LOAD refuses the whole file, names the line, and changes nothing.
    aclfile.write_text(saved + "user broken on +nosuchcommand\n")
    admin = node.client(username="default", password="admin-pw", decode_responses=True)
    with pytest.raises(redis.exceptions.ResponseError, match=r"users.acl:\d+: Error in user declaration 'broken'"):
        admin.execute_command("ACL", "LOAD")
    assert "writer" in admin.execute_command("ACL", "USERS")

    def start(*args):
        return subprocess.run([str(BIN), "server", "--node-id", "x", "--data-dir", str(tmp_path / "other"),
                               "--resp-addr", f"127.0.0.1:{free_port()}", "--http-addr", f"127.0.0.1:{free_port()}",
                               "--peer-addr", f"127.0.0.1:{free_port()}", *args],
                              capture_output=True, text=True, timeout=20)
    assert "users.acl:" in start("--aclfile", str(aclfile)).stderr  # the broken line stops a start
    assert "do not go together" in start("--aclfile", str(aclfile), "--requirepass", "x").stderr
    assert "nope.acl" in start("--aclfile", str(tmp_path / "nope.acl")).stderr
    assert "not configured to use an ACL file" in str(pytest.raises(
        redis.exceptions.ResponseError, node_factory(name="plain").start().client().execute_command,
        "ACL", "SAVE").value)


def test_acl_log_keeps_refused_commands_keys_and_logins(node):
    admin = node.client(decode_responses=True)
    admin.execute_command("ACL", "SETUSER", "carol", "on", ">pw", "~allowed:*", "+get")
    carol = node.client(username="carol", password="pw", decode_responses=True)
    for _ in range(2):
        with pytest.raises(redis.exceptions.NoPermissionError):
            carol.get("secret")
    with pytest.raises(redis.exceptions.NoPermissionError):
        carol.set("allowed:1", "v")
    assert raw(node.port, b"AUTH carol wrong\r\n").startswith(b"-WRONGPASS")
    # (redis-py's CLIENT SETINFO ... at connect are refused to carol too, and logged, as by Redis.)
    log = [e for e in admin.acl_log() if not e["object"].startswith("client|")]
    assert [(e["reason"], e["object"], e["username"], e["count"]) for e in log] == [
        ("auth", "AUTH", "carol", 1), ("command", "set", "carol", 1), ("key", "secret", "carol", 2)]
    assert all(e["context"] == "toplevel" and float(e["age-seconds"]) < 60 for e in log)
    assert len(admin.acl_log(count=1)) == 1
    stats = admin.info("stats")
    assert stats["acl_access_denied_auth"] == 1 and stats["acl_access_denied_key"] == 2
    assert stats["acl_access_denied_cmd"] >= 1 and stats["acl_access_denied_channel"] == 0
    assert admin.acl_log_reset() and admin.acl_log() == []
