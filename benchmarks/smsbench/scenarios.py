"""The scenarios a benchmark round runs, each a small class.

A scenario says which lab state it starts from (`needs`), which commands make
one run (usually one ansible-playbook; a "K concurrent slices" variant returns
K), and how its outcome is checked. Variants change the inventory, the
playbook, the environment or the command list, not the measuring:

    class SshFleetClients(ProjectClients):        # the lead's SSH fleet
        name = "clients-ssh"
        def inventory(self, ctx): return ctx.extra["ssh_inventory"]

    class SlicedClients(ProjectClients):          # K concurrent AWX-like slices
        name = "clients-4-slices"
        def commands(self, ctx, tag):
            return [self.command(ctx, tag, limit=part) for part in ctx.slices(4)]

Register a variant by adding an instance to the list `bench.py` builds
(`--scenario NAME` picks from it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .lab import REPO, BenchError, tool
from .measure import Command

BENCH = REPO / "benchmarks"
CALLBACKS = BENCH / "callbacks"
PROJECT_CALLBACK = "sms.hotfix.sms_rollout_report"


class Context:
    """What every scenario shares in one benchmark: the lab, settings, work dir."""

    def __init__(self, lab, work, forks, waves, naive_clients, extra=None):
        self.lab = lab
        self.work = Path(work)
        self.forks = forks
        self.waves = waves
        self.naive_clients = naive_clients
        self.extra = extra or {}

    def slices(self, k):
        """The clients in k near-equal --limit slices (for concurrent variants)."""
        names = list(self.lab.clients)
        return [",".join(names[i::k]) for i in range(k) if names[i::k]]


class Scenario:
    """One ansible-playbook over the lab's clients, measured as a whole."""

    name = "scenario"
    playbook = None
    needs = "any"  # "fresh": pristine clients; "upgraded": after a project upgrade
    leaves = None  # "upgraded" when the run upgrades the clients; None: lab as it was
    callbacks = ("bench_count",)

    def clients(self, ctx):
        """The clients this scenario acts on (a subset for the slow naive playbook)."""
        return list(ctx.lab.clients)

    def inventory(self, ctx):
        return ctx.lab.inventory

    def extravars(self, ctx):
        variables = {"sms_rollout_waves": ctx.waves}
        variables.update(ctx.lab.interpreter_vars())
        return variables

    def env(self, ctx, tag):
        env = dict(os.environ)
        env.pop("ANSIBLE_STDOUT_CALLBACK", None)
        env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED=",".join(self.callbacks),
            BENCH_COUNT_FILE=str(self.count_file(ctx, tag)),
            SMS_REPORT_DIR=str(ctx.work / "reports" / tag),
            PATH=str(Path(tool("ansible-playbook")).parent) + os.pathsep + os.environ.get("PATH", ""),
        )
        env.update(ctx.lab.interpreter_env())
        return env

    def count_file(self, ctx, tag, part=0):
        return ctx.work / ("%s.%d.counts.json" % (tag, part))

    def command(self, ctx, tag, limit=None, part=0):
        argv = [
            tool("ansible-playbook"),
            "-i",
            str(self.inventory(ctx)),
            str(self.playbook),
            "--forks",
            str(ctx.forks),
            "-e",
            json.dumps(self.extravars(ctx)),
        ]
        if limit:
            argv += ["--limit", limit]
        env = self.env(ctx, tag)
        env["BENCH_COUNT_FILE"] = str(self.count_file(ctx, tag, part))
        return Command(argv=argv, env=env, log=str(ctx.work / ("%s.%d.log" % (tag, part))), cwd=str(REPO))

    def commands(self, ctx, tag):
        clients = self.clients(ctx)
        limit = None if len(clients) == len(ctx.lab.clients) else ",".join(clients)
        return [self.command(ctx, tag, limit=limit)]

    def counts(self, ctx, tag, parts):
        merged = {}
        for part in range(parts):
            path = self.count_file(ctx, tag, part)
            if not path.exists():
                raise BenchError("%s: no task counts in %s (did the playbook start?)" % (self.name, path))
            for host, counts in json.loads(path.read_text(encoding="utf-8")).items():
                into = merged.setdefault(host, {})
                for key, value in counts.items():
                    into[key] = into.get(key, 0) + value
        return merged

    def check(self, ctx, counts, clients):
        """Raise BenchError unless the run did what it should on every client."""
        bad = []
        for host in clients:
            c = counts.get(host) or {}
            if not c:
                bad.append("%s: no task result" % host)
            elif c.get("failed") or c.get("unreachable"):
                bad.append("%s: failed=%d unreachable=%d" % (host, c.get("failed", 0), c.get("unreachable", 0)))
            else:
                bad += self.check_host(host, c)
        if bad:
            more = " (and %d more)" % (len(bad) - 10) if len(bad) > 10 else ""
            raise BenchError("%s: %s%s" % (self.name, "; ".join(bad[:10]), more))
        self.check_lab(ctx, clients)

    def check_host(self, host, counts):
        return []

    def check_lab(self, ctx, clients):
        pass


class ProjectClients(Scenario):
    """The project's client tier as shipped, the site staged and logon servers converged."""

    name = "clients.yml"
    playbook = REPO / "playbooks" / "clients.yml"
    needs = "fresh"
    leaves = "upgraded"
    callbacks = (PROJECT_CALLBACK, "bench_count")

    def check_host(self, host, counts):
        return (
            []
            if counts.get("changed")
            else ["%s: not changed by the upgrade (skipped=%d)" % (host, counts.get("skipped", 0))]
        )

    def check_lab(self, ctx, clients):
        ctx.lab.check_upgraded(clients)


class WholeRollout(ProjectClients):
    """rollout.yml, every tier, over the prepared site (not in the default round).

    The site server is staged and the logon servers converged by the
    preparation, so the site tier and the replication wait each find their
    work done (the wait is one check per logon server): what is left is the
    plan, the lock, those checks and the client waves, against the floor.
    """

    name = "rollout.yml"
    playbook = REPO / "rollout.yml"


class NoopRerun(ProjectClients):
    """The same client tier again over upgraded clients: nothing may change."""

    name = "no-op re-run"
    needs = "upgraded"

    def check_host(self, host, counts):
        return ["%s: changed on the no-op re-run" % host] if counts.get("changed") else []


class PingFloor(Scenario):
    """One ansible.builtin.ping per client, same waves and forks: the floor."""

    name = "ping floor"
    playbook = BENCH / "playbooks" / "ping_floor.yml"

    def check_host(self, host, counts):
        return [] if counts.get("ok") == 1 else ["%s: %d ping results" % (host, counts.get("ok", 0))]


class PingFloorBytecode(PingFloor):
    """The floor with ping's zip given bytecode as the client modules' is."""

    name = "ping floor, bytecode"
    playbook = BENCH / "playbooks" / "ping_floor_bytecode.yml"  # its action plugin is beside it


class NaivePlaybook(Scenario):
    """benchmarks/playbooks/naive_clients.yml: builtin modules, one task per step.

    It costs about ten module runs per client, so at large sizes it runs on
    the first `naive_clients` clients only and is compared per client.
    """

    name = "naive playbook"
    playbook = BENCH / "playbooks" / "naive_clients.yml"
    needs = "fresh"
    leaves = "naive"

    def clients(self, ctx):
        names = list(ctx.lab.clients)
        return names[: ctx.naive_clients] if ctx.naive_clients else names

    def check_host(self, host, counts):
        return [] if counts.get("changed") else ["%s: not changed by the naive playbook" % host]

    def check_lab(self, ctx, clients):
        ctx.lab.check_upgraded(clients)
        ctx.lab.check_pristine([c for c in ctx.lab.clients if c not in set(clients)])


def default_scenarios():
    """The round, in order: A B C D A B C D ... interleaved by bench.py."""
    return [ProjectClients(), NoopRerun(), PingFloor(), PingFloorBytecode(), NaivePlaybook()]


def optional_scenarios():
    """Scenarios run only when named (--scenario)."""
    return [WholeRollout()]
