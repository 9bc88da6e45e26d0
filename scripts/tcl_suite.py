#!/usr/bin/env python3
"""Runs units of Redis 7.0.15's own Tcl test suite against redis-server and against one
Meridian node, side by side, and writes the table of what passes (tests/TCL_SUITE.md).

    sudo python3 scripts/tcl_suite.py                 # every unit of issue 13's list
    sudo python3 scripts/tcl_suite.py type/list multi # some units

The suite (BSD-3) is not committed: it comes from Debian's source package of redis 7.0.15,
fetched into /var/cache/meridian-tcl on first use (root, deb-src), as ../shared/testing.md
describes; REDIS_TCL_DIR points at another copy. Each unit runs in external mode against a
fresh server (redis-server with no persistence, a fresh Meridian data directory), with the
tags that need a replica, DEBUG, SAVE or a memory limit left out, as for redis-server. A
unit stops at its first exception, so the table names it."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("/var/cache/meridian-tcl")
UNITS = [
    "type/list", "type/zset", "type/hash", "type/set", "type/string", "type/incr", "expire",
    "keyspace", "multi", "info", "introspection", "introspection-2", "protocol", "pubsub",
    "pubsubshard", "querybuf", "tracking", "meridian/acl", "meridian/auth",
]
# Units whose every block is tagged external:skip (each starts a server with settings of its
# own), so that external mode skips them all, for redis-server too: the first block of each,
# which needs no settings, runs as `meridian/<unit>` with that tag taken off (the copy is
# written into the suite's tests/unit/meridian/). The value is the block's last line.
VARIANTS = {"acl": 746, "auth": 11}
TAGS = ("-needs:repl -needs:debug -needs:save -needs:config-maxmemory -needs:reset -needs:pfdebug "
        "-needs:config-resetstat")
UNIT_TIMEOUT_S = 180
# Tests Meridian is not run for, because they need what it does not have on purpose or not
# yet; an error there would end the whole unit (a unit stops at its first exception). They
# still count as not passed. Only the Meridian run skips them.
SKIP = {
    # Meridian runs no server-side scripts or functions (EVAL, FCALL, FUNCTION LOAD).
    "MONITOR can log commands issued by the scripting engine": "scripting",
    "MONITOR can log commands issued by functions": "scripting",
    "MULTI and script timeout": "scripting",
    "EXEC and script timeout": "scripting",
    "MULTI-EXEC body and script timeout": "scripting",
    "just EXEC and script timeout": "scripting",
    "COMMAND GETKEYS EVAL with keys": "scripting",
    "Invalid keys should not be tracked for scripts in NOLOOP mode": "scripting",
    "Tracking only occurs for scripts when a command calls a read-only command": "scripting",
    "COMMAND GETKEYS EVAL without keys": "scripting",
    # Redis's server parameters (maxmemory, maxmemory-clients, ...) are flags of `meridian
    # server` here: CONFIG SET refuses them.
    "CONFIG SET with multiple args": "server parameters",
    "CONFIG SET rollback on set error": "server parameters",
    "CONFIG SET rollback on apply error": "server parameters",
    "Tracking invalidation message of eviction keys should be before response": "server parameters",
    "MULTI with BGREWRITEAOF": "server parameters",
    "MULTI with config set appendonly": "server parameters",
    "MULTI with config error": "server parameters",
    # Streams are not built.
    "Keyspace notifications: stream events test": "streams",
    "COPY basic usage for stream": "streams",
    "COPY basic usage for stream-cgroups": "streams",
    "MULTI propagation of XREADGROUP": "streams",
    "Blocking commands ignores the timeout": "streams",
    "COMMAND GETKEYS XGROUP": "streams",
    # ACL categories and key flags come with users (issue 14).
    "COMMAND LIST FILTERBY ACLCAT - list all commands/subcommands": "scripting",
    "ACLs including of a type includes also subcommands": "streams",
    # Meridian has no DEBUG command.
    "ACLs can block all DEBUG subcommands except one": "debug",
    "ACL GETUSER is able to translate back command permissions": "debug",
    "ACL #5998 regression: memory leaks adding / removing subcommands": "debug",
    # MEMORY STATS reports the allocator's figures, which Meridian does not keep.
    "ACLs set can exclude subcommands, if already full command exists": "memory figures",
    "ACL requires explicit permission for scripting for EVAL_RO, EVALSHA_RO and FCALL_RO": "scripting",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def suite_dir() -> Path:
    if os.environ.get("REDIS_TCL_DIR"):
        return Path(os.environ["REDIS_TCL_DIR"])
    found = sorted(CACHE.glob("redis-7.0.15*"))
    if found and found[0].is_dir():
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    sources = Path("/etc/apt/sources.list.d/src.sources")
    if not sources.exists():
        first = Path("/etc/apt/sources.list.d/debian.sources").read_text().split("\n\n")[0]
        first = re.sub(r"^Types: deb$", "Types: deb-src", first, flags=re.M)
        first = re.sub(r"^Suites: .*$", "Suites: bookworm", first, flags=re.M)
        sources.write_text(first + "\n")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "dpkg-dev", "tcl"], check=True)
    subprocess.run(["apt-get", "source", "-qq", "redis"], cwd=CACHE, check=True)
    return sorted(p for p in CACHE.glob("redis-7.0.15*") if p.is_dir())[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_redis(port: int):
    return subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_meridian(port: int, data: str):
    binary = ROOT / "target" / "release" / "meridian"
    return subprocess.Popen([str(binary), "server", "--node-id", "tcl-1", "--data-dir", data,
                             "--resp-addr", f"127.0.0.1:{port}", "--http-addr", f"127.0.0.1:{free_port()}",
                             "--peer-addr", f"127.0.0.1:{free_port()}"],
                            stdout=subprocess.DEVNULL, stderr=open(Path(data).parent / "meridian.log", "ab"))


def run_unit(suite: Path, unit: str, port: int, skip=()) -> dict:
    """Runs one unit against the server on `port`, without the tests named in `skip`: the
    names of the tests that passed and failed, and the exception that stopped it, if one did."""
    cmd = ["tclsh", "tests/test_helper.tcl", "--host", "127.0.0.1", "--port", str(port), "--singledb",
           "--ignore-encoding", "--ignore-digest", "--clients", "1", "--tags", TAGS, "--single", f"unit/{unit}"]
    for name in skip:
        cmd += ["--skiptest", name]
    try:
        out = subprocess.run(cmd, cwd=suite, capture_output=True, text=True, timeout=UNIT_TIMEOUT_S,
                             errors="replace").stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\n[exception]: timed out\n"
    out = ANSI.sub("", out)
    passed, failed = set(), []
    exception = None
    lines = out.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\[(ok|err)\]: (.*?)(?: \(\d+ ms\))?$", line)
        if m and m.group(1) == "ok":
            passed.add(m.group(2))
        elif m:
            failed.append(m.group(2))
        elif line.startswith("[exception]"):
            exception = " ".join(lines[i:i + 3]).strip()[:300]
            break
    return {"passed": passed, "failed": failed, "exception": exception}


def prepare_variants(suite: Path):
    """Writes tests/unit/meridian/<unit>.tcl for each of VARIANTS."""
    (suite / "tests" / "unit" / "meridian").mkdir(exist_ok=True)
    for unit, last in VARIANTS.items():
        lines = (suite / "tests" / "unit" / f"{unit}.tcl").read_text().splitlines()[:last]
        lines[0] = lines[0].replace(" external:skip", "")
        (suite / "tests" / "unit" / "meridian" / f"{unit}.tcl").write_text("\n".join(lines) + "\n")


def main():
    units = sys.argv[1:] or UNITS
    suite = suite_dir()
    prepare_variants(suite)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "meridian"], cwd=ROOT, check=True)
    rows = []
    for unit in units:
        port = free_port()
        redis = start_redis(port)
        wait_port(port)
        try:
            baseline = run_unit(suite, unit, port)
        finally:
            redis.kill()
            redis.wait()
        tmp = tempfile.mkdtemp(prefix="meridian-tcl-")
        port = free_port()
        node = start_meridian(port, os.path.join(tmp, "data"))
        try:
            wait_port(port)
            ours = run_unit(suite, unit, port, SKIP)
        finally:
            node.kill()
            node.wait()
            shutil.rmtree(tmp, ignore_errors=True)
        both = baseline["passed"] & ours["passed"]
        missing = sorted(baseline["passed"] - ours["passed"])
        rows.append((unit, len(baseline["passed"]), len(both), missing, ours["exception"]))
        share = 100 * len(both) / max(1, len(baseline["passed"]))
        print(f"{unit}: redis-server {len(baseline['passed'])}, Meridian {len(both)} ({share:.0f}%)"
              + (f"; stopped: {ours['exception']}" if ours["exception"] else "")
              + (f"; not passed: {'; '.join(missing)}" if missing else ""), flush=True)
    if units == UNITS:
        write_table(rows)
    else:
        print("(some units only: tests/TCL_SUITE.md is written by a run of every unit)")


def write_table(rows):
    total_redis = sum(r[1] for r in rows)
    total_ours = sum(r[2] for r in rows)
    lines = [
        "# Redis's own test suite against Meridian",
        "",
        "Redis 7.0.15's Tcl suite in external mode, unit by unit: how many of the tests that",
        "redis-server 7.0.15 passes on this machine also pass against one Meridian node.",
        "Reproduce with `sudo python3 scripts/tcl_suite.py` (it fetches the suite from Debian's",
        "source package on first use; see the script). Generated; the explanations of the",
        "remaining failures are in tests/TCL_SUITE_NOTES.md.",
        "",
        "| unit | redis-server passes | Meridian passes of those | share | stopped by |",
        "|---|---:|---:|---:|---|",
    ]
    for unit, theirs, ours, _, exception in rows:
        share = f"{100 * ours / max(1, theirs):.0f}%"
        stop = (exception or "").replace("|", "\\|")
        lines.append(f"| {unit} | {theirs} | {ours} | {share} | {stop} |")
    lines.append(f"| **all** | **{total_redis}** | **{total_ours}** | "
                 f"**{100 * total_ours / max(1, total_redis):.0f}%** | |")
    lines += ["", "Not run against Meridian (an error there would end the unit), counted as not passed: "
              + "; ".join(f"{name} ({why})" for name, why in SKIP.items()) + "."]
    lines += ["", "## Tests redis-server passes and Meridian does not", ""]
    for unit, _, _, missing, _ in rows:
        if missing:
            lines.append(f"- `{unit}`: " + "; ".join(missing))
    (ROOT / "tests" / "TCL_SUITE.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
