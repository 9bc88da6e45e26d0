"""Several hosts on one machine: a network namespace per host, each with a veth into one bridge
in the root namespace, on a private subnet that exists only here. Partitions are iptables
rules inside a host's namespace. Needs root, `ip` and `iptables`."""

import os
import shutil
import subprocess


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def why_not() -> str | None:
    """Why hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces and iptables need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


class Hosts:
    """`count` hosts, 10.X.Y.1 ... 10.X.Y.count, removed again by `close` (even after a failure)."""

    def __init__(self, count: int):
        tag = os.getpid() % 10000
        self.subnet = f"10.{200 + tag % 50}.{tag % 250}"
        self.bridge = f"mrdbr{tag}"
        self.names = [f"mrd{tag}h{i + 1}" for i in range(count)]
        self.made = []
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            self.made.append(("link", self.bridge))
            sh("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
            for i, ns in enumerate(self.names):
                outside, inside = f"mrd{tag}v{i + 1}a", f"mrd{tag}v{i + 1}b"
                sh("ip", "netns", "add", ns)
                self.made.append(("netns", ns))
                sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
                self.made.append(("link", outside))
                sh("ip", "link", "set", inside, "netns", ns)
                sh("ip", "link", "set", outside, "master", self.bridge, "up")
                sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.address(i)}/24", "dev", inside)
                sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
                sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def address(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    def cut(self, a: int, b: int):
        """Drops every packet between hosts a and b, both ways."""
        for x, y in ((a, b), (b, a)):
            sh("ip", "netns", "exec", self.names[x], "iptables", "-A", "INPUT", "-s", self.address(y), "-j", "DROP")

    def heal(self):
        for ns in self.names:
            sh("ip", "netns", "exec", ns, "iptables", "-F", "INPUT")

    def close(self):
        for kind, name in reversed(self.made):
            if kind == "netns":
                # Whatever still runs in the namespace would keep it (and its links) alive.
                pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
                for pid in pids:
                    subprocess.run(["kill", "-9", pid], capture_output=True)
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
            else:
                subprocess.run(["ip", "link", "del", name], capture_output=True)
        self.made = []
