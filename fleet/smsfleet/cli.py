"""Command line of the SSH fleet: `fleet/sms-fleet <command> [--root DIR] ...`."""

import argparse
import json
import os
import sys

from .fleet import REPO, Fleet, FleetError
from .netem import NetemUnavailable


def default_root():
    return os.environ.get("SMS_FLEET_ROOT") or os.path.join(REPO, ".fleet")


def _fleet(args, need=True):
    fleet = Fleet(args.root)
    if need and not fleet.state:
        raise FleetError("no fleet at %s (run: fleet/sms-fleet up --root %s)" % (fleet.root, fleet.root))
    return fleet


def cmd_up(args):
    fleet = _fleet(args, need=False)
    fleet.up(cycle=args.cycle, hide=args.hide, clients=args.clients, alpha=args.alpha, smsrun=not args.no_smsrun)
    st = fleet.state
    print("fleet up at %s: bridge %s, %s" % (fleet.root, st["bridge"], st["subnet"]))
    for name, h in sorted(st["hosts"].items(), key=lambda item: item[1]["index"]):
        extra = ""
        if h["role"] == "client":
            extra = " %s, logon server %s, SMSRUN32 %s" % (h["platform"], h["logon_server"], h["smsrun"])
        print("  %-9s %-6s %s%s" % (name, h["role"], h["address"], extra))
    print("inventory: %s" % fleet.inventory)
    print("try: ANSIBLE_SSH_CONTROL_PATH_DIR=%s ansible-playbook -i %s rollout.yml"
          % (fleet.control_path_dir, fleet.inventory))
    return 0


def cmd_down(args):
    fleet = _fleet(args, need=False)
    if not fleet.state and not os.path.exists(fleet.root):
        print("no fleet at %s" % fleet.root)
        return 0
    fleet.down()
    print("fleet at %s is down; nothing left behind" % fleet.root)
    return 0


def cmd_status(args):
    print(json.dumps(_fleet(args, need=False).status(), indent=2, sort_keys=True))
    return 0


def cmd_inventory(args):
    print(_fleet(args).inventory)
    return 0


def cmd_reset(args):
    _fleet(args).reset()
    print("fleet at %s reset" % args.root)
    return 0


def cmd_exec(args):
    """Run a command inside a host (its mounts, processes and network)."""
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise FleetError("exec %s: give the command to run, e.g. exec %s -- ps -ef" % (args.host, args.host))
    proc = _fleet(args).nsenter(args.host, argv, check=False, timeout=600)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def cmd_fault(args):
    fleet = _fleet(args)
    name, action = args.host, args.action
    if action == "sshd-stop":
        fleet.stop_sshd(name)
    elif action == "sshd-start":
        fleet.start_sshd(name)
    elif action == "link-down":
        fleet.link(name, up=False)
    elif action == "link-up":
        fleet.link(name, up=True)
    elif action == "slow":
        fleet.netem(name, args.delay)
    elif action == "fast":
        fleet.netem_clear(name)
    elif action == "small-drive":
        print(json.dumps(fleet.small_drive(name, args.free)))
    elif action == "restart":
        fleet.restart_host(name)
    elif action == "smsrun":
        print(fleet.start_smsrun(name, hung=args.hung, stubborn=args.stubborn))
    print("%s: %s done" % (name, action))
    return 0


def cmd_leftovers(args):
    fleet = Fleet(args.root)
    left = fleet.leftovers()
    for line in left:
        print(line)
    return 1 if left else 0


def parser():
    p = argparse.ArgumentParser(prog="sms-fleet", description="The SSH fleet (docs/FLEET.md).")
    p.add_argument("--root", default=default_root(),
                   help="the fleet's folder (default $SMS_FLEET_ROOT or <checkout>/.fleet)")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    up = sub.add_parser("up", help="build the fleet: namespaces, bridge, sshd, twin, SMSRUN32")
    up.add_argument("--cycle", type=float, default=4.0, help="the Maintenance Manager twin's work cycle (s)")
    up.add_argument("--hide", action="append", default=[], metavar="DIR",
                    help="another controller folder the hosts must not see (repeatable)")
    up.add_argument("--clients", type=int, default=6, help="clients (default 6; the last --alpha are Alpha)")
    up.add_argument("--alpha", type=int, default=2, help="Alpha clients (default 2)")
    up.add_argument("--no-smsrun", action="store_true", help="start no SMSRUN32 stand-in (benchmarks)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop everything the fleet started and remove its folder").set_defaults(
        func=cmd_down)
    sub.add_parser("status", help="print the fleet's state as JSON").set_defaults(func=cmd_status)
    sub.add_parser("inventory", help="print the path of the fleet's inventory").set_defaults(func=cmd_inventory)
    sub.add_parser("reset", help="every host back to its state after up").set_defaults(func=cmd_reset)
    sub.add_parser("leftovers", help="list what of the fleet is left behind (exit 1 if anything)").set_defaults(
        func=cmd_leftovers)
    ex = sub.add_parser("exec", help="run a command inside a host")
    ex.add_argument("host")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)

    for action, help_ in (("sshd-stop", "stop the host's sshd and every sshd session of it"),
                          ("sshd-start", "start the host's sshd again"),
                          ("link-down", "cut the host's link (and the twin's way to it)"),
                          ("link-up", "restore the host's link"),
                          ("slow", "delay packets to the host with netem"),
                          ("fast", "remove the netem delay"),
                          ("small-drive", "put the host's drive on a small tmpfs (a full disk)"),
                          ("restart", "restart the host (new mount and PID namespace)"),
                          ("smsrun", "start SMSRUN32 stand-ins on a client")):
        f = sub.add_parser(action, help=help_)
        f.add_argument("host")
        f.set_defaults(func=cmd_fault, action=action)
        if action == "slow":
            f.add_argument("--delay", type=int, default=100, help="milliseconds (default 100)")
        if action == "small-drive":
            f.add_argument("--free", type=int, default=64 * 1024, help="bytes left free (default 64 KiB)")
        if action == "smsrun":
            f.add_argument("--hung", action="store_true")
            f.add_argument("--stubborn", action="store_true")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    args.root = os.path.abspath(args.root)
    try:
        return args.func(args) or 0
    except NetemUnavailable as exc:
        print("sms-fleet: %s" % exc, file=sys.stderr)
        return 3
    except FleetError as exc:
        print("sms-fleet %s: %s" % (args.command, exc), file=sys.stderr)
        return 2
