"""Session guarantees across failovers (issue 15, item 5), seeded: a client writes and reads
through redis-py's Sentinel support while it moves between regions and while the node it is on
is killed. Carrying a causal token (taken after each command, and `MERIDIAN WAITFOR` sent
before each command in the same pipeline, so on the node that runs it) it never reads older
than what it wrote (read-your-writes) or than what it read before (monotonic reads). The same schedule without tokens reads stale values, so the
checker can fail. `SESSION_SEEDS=1,2,3` runs more seeds."""

import os
import random

import pytest
import redis
from redis.sentinel import Sentinel

from test_discovery import all_ready, start
from test_replication import wait_for

SEEDS = [int(s) for s in os.environ.get("SESSION_SEEDS", "1,2").split(",")]
REGIONS = ["eu", "us", "ap"]
KEYS = 4


class Session:
    """One client's session: what it wrote and read, and the violations of both guarantees."""

    def __init__(self, nodes, region, prefix, tokens):
        self.nodes, self.prefix, self.tokens = nodes, prefix, tokens
        self.sentinels = Sentinel([("127.0.0.1", n.sentinel_port) for n in nodes], socket_timeout=2)
        self.token = None
        self.wrote, self.read = {}, {}
        self.violations = []
        self.moves = 0
        self.go(region)

    def go(self, region):
        self.client = self.sentinels.master_for(region, socket_timeout=5, socket_connect_timeout=1)

    def node(self):
        port = self.client.connection_pool.get_master_address()[1]
        return next(n for n in self.nodes if n.port == port)

    def arrive(self):
        self.moves += 1

    def run(self, *command):
        """Runs a command and takes the token after it, retrying through a failover. With
        tokens, `MERIDIAN WAITFOR` goes first in the same pipeline: on the same connection, so
        on the node that runs the command, whichever node the pool reached. A node that cannot
        reach the token (the writes are on a node that was killed) answers TRYAGAIN: that node
        is brought back and the command runs again."""
        for _ in range(200):
            try:
                pipe = self.client.pipeline(transaction=False)
                waits = self.tokens and self.token is not None
                if waits:
                    pipe.execute_command("MERIDIAN", "WAITFOR", self.token, 2000)
                pipe.execute_command(*command)
                pipe.execute_command("MERIDIAN", "TOKEN")
                replies = pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError):
                wait_for(lambda: self.reachable(), timeout=15, what="a node to answer")
                self.arrive()
                continue
            if waits and isinstance(replies[0], redis.exceptions.TryAgainError):
                self.restart()
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            self.token = replies[-1]
            return replies[-2]
        raise AssertionError(f"{command} never ran")

    def reachable(self):
        try:
            return self.client.ping()
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def write(self, key, value):
        self.run("SET", f"{self.prefix}{key}", value)
        self.wrote[key] = value

    def check(self, key):
        got = int(self.run("GET", f"{self.prefix}{key}") or 0)
        floor = max(self.wrote.get(key, 0), self.read.get(key, 0))
        if got < floor:
            self.violations.append((key, got, floor))
        self.read[key] = max(self.read.get(key, 0), got)


def play(nodes, seed, tokens, kills):
    rng = random.Random(seed)
    session = Session(nodes, "eu", f"s{seed}{'t' if tokens else 'n'}:", tokens)
    down = []

    def restart():
        while down:
            down.pop().start()

    session.restart = restart
    for step in range(1, 61):
        key = rng.randrange(KEYS)
        roll = rng.random()
        if roll < 0.15:
            # Write, move to another region at once, read it there.
            session.write(key, step)
            session.go(rng.choice([r for r in REGIONS if session.node().region != r]))
            wait_for(session.reachable, timeout=15, what="the new region to answer")
            session.arrive()
            session.check(key)
        elif roll < 0.25 and kills and not down:
            # Write, then the node it went to dies: the next command fails over.
            session.write(key, step)
            victim = session.node()
            victim.kill9()
            down.append(victim)
            session.check(key)
        elif roll < 0.6:
            session.write(key, step)
        else:
            session.check(key)
        if down and rng.random() < 0.2:
            restart()
    restart()
    return session


@pytest.mark.parametrize("seed", SEEDS)
def test_tokens_keep_read_your_writes_and_monotonic_reads_across_failovers(node_factory, seed):
    nodes = start(node_factory)
    for n in nodes:
        n.region = n.node_id.split("-")[0]
    # Without tokens, the same kind of schedule (moves only) reads stale values.
    blind = play(nodes, seed, tokens=False, kills=False)
    print(f"seed {seed} without tokens: {blind.moves} moves, {len(blind.violations)} stale reads")
    assert blind.violations, "the checker saw no stale read without tokens: it could not fail"
    wait_for(lambda: all_ready(nodes), timeout=30, what="every node ready again")
    session = play(nodes, seed, tokens=True, kills=True)
    print(f"seed {seed} with tokens: {session.moves} moves, {len(session.violations)} violations")
    assert session.moves >= 3
    assert session.violations == [], session.violations
