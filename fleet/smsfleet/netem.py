"""Slow links with the kernel's netem queueing discipline, where it has one."""

import subprocess


class NetemUnavailable(Exception):
    """The kernel offers no netem qdisc (sch_netem): links cannot be slowed."""


def _tc(*args):
    return subprocess.run(["tc", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30,
                          check=False)


def delay(link, delay_ms):
    """Delay every packet the host receives on `link` (the bridge side of its veth)."""
    proc = _tc("qdisc", "replace", "dev", link, "root", "netem", "delay", "%dms" % delay_ms)
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).strip()
        if "unknown" in text.lower() or "not supported" in text.lower() or "no such file" in text.lower():
            raise NetemUnavailable("the kernel offers no netem qdisc (tc: %s)" % text)
        raise RuntimeError("tc qdisc replace dev %s root netem delay %dms failed: %s" % (link, delay_ms, text))


def has_qdisc(link):
    return "netem" in _tc("qdisc", "show", "dev", link).stdout


def clear(link):
    if has_qdisc(link):
        _tc("qdisc", "del", "dev", link, "root")
