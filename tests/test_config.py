"""Configuration: flags over MERIDIAN_* environment variables over the TOML file."""

import json
import subprocess
import urllib.request

from conftest import BIN


def status(node):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/v1/status"))


def test_flag_over_env_over_file(node_factory, tmp_path):
    conf = tmp_path / "meridian.toml"
    conf.write_text('region = "from-file"\nfsync = "never"\nmax-clients = 5\n')
    n = node_factory("--config", str(conf), env={"MERIDIAN_FSYNC": "batch"}).start()
    s = status(n)
    assert s["region"] == "from-file"
    assert s["fsync"] == "batch"  # the environment wins over the file
    assert n.client(decode_responses=True).config_get("maxclients") == {"maxclients": "5"}
    n.stop()
    m = node_factory("--config", str(conf), "--fsync", "always", env={"MERIDIAN_FSYNC": "batch"}, name="data2").start()
    assert status(m)["fsync"] == "always"  # the flag wins over the environment


def test_bad_configuration_is_refused_clearly(tmp_path):
    out = subprocess.run([str(BIN), "server", "--fsync", "sometimes", "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "--fsync must be always, batch or never" in out.stderr
    out = subprocess.run([str(BIN), "server", "--peer-addr", "10.9.9.9:7381", "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "--certs-dir" in out.stderr and "--insecure-peers" in out.stderr
    out = subprocess.run([str(BIN), "server", "--peer-addr", "10.9.9.9:7381", "--insecure-peers",
                          "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "--cluster-secret" in out.stderr


def test_demo_runs_and_exits():
    out = subprocess.run([str(BIN), "demo", "--exit"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for region in ("eu", "us", "ap"):
        assert f"  {region}  redis-cli -p" in out.stdout
        # The counter incremented 100 times in each region sums exactly everywhere...
        assert f'{region}  GET visits -> "300"' in out.stdout
        # ...and after the cut-off region heals, every region shows both sides' writes.
        assert f'{region}  SMEMBERS visited -> ["paris", "seoul", "sydney", "tokyo"]   GET visits -> "305"' in out.stdout
    assert "converged" in out.stdout
    # It ran secured: the regions replicated over mutual TLS, clients are given a password.
    assert "peer links over mutual TLS" in out.stdout
    assert "--tls --cacert" in out.stdout and " -a " in out.stdout
    # The client that knows only its region's name fails over to eu's nearest region through
    # the sentinels, and a new client goes back to eu-1 once it is back and caught up.
    assert "acknowledged by us-1 (eu's nearest region)" in out.stdout
    assert "writes made at us-1 while it was away -> (integer) 2" in out.stdout
    assert "a new client of eu -> eu-1" in out.stdout
    # Sensors in every region publish over MQTT; the fused series reads the same in every
    # region, every bucket final (no ~ mark), with the watermark's lag shown.
    fused = {}
    for line in out.stdout.splitlines():
        for region in ("eu", "us", "ap"):
            if line.startswith(f"   {region}  ") and "watermark" in line:
                fused[region] = line[len(f"   {region}  "):].split("   watermark")[0]
    assert len(fused) == 3 and len(set(fused.values())) == 1, fused
    assert fused["eu"].count("|") >= 3 and "~" not in fused["eu"]
    assert "readings published and acknowledged" in out.stdout
