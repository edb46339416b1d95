"""Command line of the lab twin: `lab/sms-lab <command> --root DIR ...`."""

import argparse
import json
import os
import sys

from . import build as labbuild
from . import common, content, inventory, mm, procs, smsrun
from .spec import Spec, SpecError


def _root(args):
    return common.lab_root(args.root)


def _load_spec(root):
    data = common.read_json(os.path.join(root, common.LAB_JSON))
    if data is None:
        raise SystemExit("sms-lab: no lab at %s (missing lab.json; run build first)" % root)
    return Spec.from_dict(data)


def cmd_build(args):
    root = _root(args)
    try:
        spec = Spec(logon_servers=args.logon_servers, clients=args.clients, alpha=args.alpha,
                    hung=args.hung, smsrun=not args.no_smsrun, mm=not args.no_mm,
                    cycle=args.cycle, idle_timeout=args.idle_timeout, skip=tuple(args.skip))
    except SpecError as exc:
        print("sms-lab build: %s" % exc, file=sys.stderr)
        return 2
    tool = os.path.join(os.path.abspath(args.repo), "lab", "sms-lab") if args.repo else None
    try:
        summary = labbuild.build(root, spec, tool=tool)
    except labbuild.LabError as exc:
        print("sms-lab build: %s" % exc, file=sys.stderr)
        return 2
    n86, nal = len(spec.clients_of("x86")), len(spec.clients_of("alpha"))
    print("lab built at %s" % root)
    print("  site server: %s; logon servers: %s" % (spec.site_server, ", ".join(spec.logon_server_names)))
    print("  clients: %d (%d x86, %d alpha)" % (spec.clients, n86, nal))
    print("  inventory: %s" % os.path.join(root, common.INVENTORY))
    if summary["mm_pid"]:
        print("  maintenance manager twin: pid %s, cycle %gs" % (summary["mm_pid"], spec.cycle))
    else:
        print("  maintenance manager twin: not started (--no-mm)")
    if spec.smsrun:
        hung = list(spec.hung_clients)
        print("  SMSRUN32: %d healthy; hung (2 instances each): %s"
              % (spec.clients - len(hung), ", ".join(hung) or "none"))
    else:
        print("  SMSRUN32: not started (--no-smsrun)")
    if spec.skip:
        print("  skipped by the twin: %s" % ", ".join(spec.skip))
    return 0


def cmd_down(args):
    root = _root(args)
    try:
        left = labbuild.down(root, keep_files=args.keep_files)
    except labbuild.LabError as exc:
        print("sms-lab down: %s" % exc, file=sys.stderr)
        return 2
    if left:
        print("sms-lab down: processes still alive: %s" % left, file=sys.stderr)
        return 1
    print("lab at %s is down%s" % (root, " (files kept)" if args.keep_files else ""))
    return 0


def cmd_pass_now(args):
    ok, msg = mm.pass_now(_root(args), wait=not args.no_wait, timeout=args.timeout)
    print(("" if ok else "sms-lab pass-now: ") + msg, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _skip_edit(args, add):
    root = _root(args)
    spec = _load_spec(root)
    host = args.host.lower()
    if host not in spec.logon_server_names:
        print("sms-lab: %s is not a logon server of this lab (%s)"
              % (args.host, ", ".join(spec.logon_server_names)), file=sys.stderr)
        return 2
    names = set(mm.read_skip(root))
    names = names | {host} if add else names - {host}
    mm.write_skip(root, names)
    print("skipped by the twin: %s" % (", ".join(sorted(names)) or "none"))
    return 0


def cmd_smsrun(args):
    root = _root(args)
    try:
        pids = smsrun.spawn(root, args.host, hung=args.hung, stubborn=args.stubborn,
                            lifetime=args.lifetime, cpu=args.cpu)
    except smsrun.SmsrunError as exc:
        print("sms-lab smsrun: %s" % exc, file=sys.stderr)
        return 2
    print("SMSRUN32 started on %s: pid %s" % (args.host, ", ".join(str(p) for p in pids)))
    return 0


def status_dict(root):
    state = mm.read_state(root) or {}
    pid = mm.pid_of(root) if os.path.isdir(common.run_dir(root)) else None
    return {
        "root": root,
        "built": os.path.exists(os.path.join(root, common.LAB_JSON)),
        "mm": {"pid": pid, "alive": pid is not None},
        "passes": state.get("passes"),
        "copy_list_version": state.get("copy_list_version"),
        "last_pass_changes": state.get("last_pass_changes"),
        "skip": mm.read_skip(root),
        "smsrun32": procs.smsrun32_processes(root),
    }


def cmd_status(args):
    print(json.dumps(status_dict(_root(args)), indent=2, sort_keys=True))
    return 0


def cmd_payload(args):
    out = os.path.abspath(args.out)
    for rel, size, when in content.write_payload(out):
        print("%s  %d bytes  %s" % (os.path.join(out, rel), size, when))
    return 0


def cmd_inventory(args):
    if args.static:
        spec = Spec(logon_servers=args.logon_servers, clients=args.clients, alpha=args.alpha, hung=0)
        sys.stdout.write(inventory.render_static(spec))
        return 0
    if not args.root:
        print("sms-lab inventory: give --static or --root DIR", file=sys.stderr)
        return 2
    root = _root(args)
    sys.stdout.write(inventory.render(root, common.TOOL, _load_spec(root)))
    return 0


def cmd_mm(args):
    root = _root(args)
    spec = _load_spec(root)
    cycle = args.cycle if args.cycle is not None else spec.cycle
    idle = args.idle_timeout if args.idle_timeout is not None else spec.idle_timeout
    if args.detach:
        if mm.pid_of(root):
            print("the twin is already running (pid %d)" % mm.pid_of(root))
            return 0
        print("maintenance manager twin started: pid %d" % mm.start_detached(root, cycle, idle))
        return 0
    return mm.serve(root, cycle, idle)


def cmd_smsrun32_body(args):
    return smsrun.run(_root(args), args.host, args.image, args.mode, args.lifetime,
                      args.cpu, args.stubborn, comm=args.comm)


def cmd_ie_setup(args):
    root = _root(args)
    try:
        if args.done:
            smsrun.ie_setup_done(root, args.host)
            print("IE 4.01 per-user setup on %s: finished" % args.host)
            return 0
        pids, kind = smsrun.ie_setup(root, args.host, cpu=args.cpu, lifetime=args.lifetime)
    except smsrun.SmsrunError as exc:
        print("sms-lab ie-setup: %s" % exc, file=sys.stderr)
        return 2
    if kind == "hotfix":
        print("IE 4.01 per-user setup running on %s: its SMSRUN32 is the hotfix's, not affected" % args.host)
    elif pids:
        print("IE 4.01 per-user setup running on %s: the pre-hotfix SMSRUN32 hangs (Q216552): pid %s"
              % (args.host, ", ".join(str(p) for p in pids)))
    else:
        print("IE 4.01 per-user setup running on %s: a pre-hotfix SMSRUN32 started now hangs (Q216552)" % args.host)
    return 0


def cmd_service(args):
    try:
        code, msg = smsrun.service(_root(args), args.host, args.action)
    except smsrun.SmsrunError as exc:
        print("sms-lab service: %s" % exc, file=sys.stderr)
        return 2
    print(msg, file=sys.stdout if code in (0, 3) else sys.stderr)
    return code


def cmd_reboot(args):
    try:
        lines = smsrun.reboot(_root(args), args.host)
    except smsrun.SmsrunError as exc:
        print("sms-lab reboot: %s" % exc, file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def cmd_service_fault(args):
    root = _root(args)
    marker = smsrun.fault_marker(root, args.host)
    if args.clear:
        if os.path.exists(marker):
            os.unlink(marker)
        print("SMS client service on %s: starts normally" % args.host)
    else:
        with open(marker, "w", encoding="ascii") as fh:
            fh.write("fail\n")
        print("SMS client service on %s: its next starts fail" % args.host)
    return 0


def parser():
    p = argparse.ArgumentParser(prog="sms-lab", description="The SMS 1.2 lab twin (docs/LAB.md).")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    def add(name, func, help_, root=True):
        sp = sub.add_parser(name, help=help_, description=help_)
        if root:
            sp.add_argument("--root", required=True, help="the lab root directory")
        sp.set_defaults(func=func)
        return sp

    b = add("build", cmd_build, "(re)build the lab tree and start its processes")
    b.add_argument("--logon-servers", type=int, default=2)
    b.add_argument("--clients", type=int, default=12)
    b.add_argument("--alpha", type=int, default=2, help="the last K clients are Alpha")
    b.add_argument("--hung", type=int, default=1, help="the first K x86 clients are hung")
    b.add_argument("--no-smsrun", action="store_true", help="start no SMSRUN32 process")
    b.add_argument("--no-mm", action="store_true", help="do not start the Maintenance Manager twin")
    b.add_argument("--cycle", type=float, default=10.0, help="twin work cycle in seconds")
    b.add_argument("--skip", action="append", default=[], metavar="HOST",
                   help="logon server the twin never serves (repeatable)")
    b.add_argument("--idle-timeout", type=float, default=1800.0,
                   help="the twin exits after this many seconds with nothing to do")
    b.add_argument("--repo", help="repository whose lab/sms-lab the inventory names")

    d = add("down", cmd_down, "stop every process of the lab and remove it")
    d.add_argument("--keep-files", action="store_true")

    pn = add("pass-now", cmd_pass_now, "ask the twin for a pass now and wait for it")
    pn.add_argument("--no-wait", action="store_true")
    pn.add_argument("--timeout", type=float, default=30.0)

    for name, flag in (("skip", True), ("unskip", False)):
        sp = add(name, lambda a, f=flag: _skip_edit(a, f),
                 "%s a logon server for the twin" % ("skip" if flag else "stop skipping"))
        sp.add_argument("host")

    s = add("smsrun", cmd_smsrun, "start SMSRUN32 on a client (detached) and return")
    s.add_argument("--host", required=True)
    s.add_argument("--hung", action="store_true", help="start two CPU-burning instances")
    s.add_argument("--stubborn", action="store_true", help="ignore SIGTERM")
    s.add_argument("--lifetime", type=float, default=None,
                   help="seconds (default %g healthy, %g hung)" % (smsrun.HEALTHY_LIFETIME, smsrun.HUNG_LIFETIME))
    s.add_argument("--cpu", type=float, default=smsrun.HUNG_CPU, help="hung duty cycle (0..1)")

    ie = add("ie-setup", cmd_ie_setup, "IE 4.01 per-user setup on a client: a pre-hotfix SMSRUN32 hangs (Q216552)")
    ie.add_argument("--host", required=True)
    ie.add_argument("--cpu", type=float, default=smsrun.IE_CPU, help="the hang's duty cycle (0..1)")
    ie.add_argument("--lifetime", type=float, default=smsrun.IE_LIFETIME, help="seconds a hung instance lives")
    ie.add_argument("--done", action="store_true", help="the per-user setup has finished")

    sv = add("service", cmd_service, "start, stop or query a client's SMS client service stand-in")
    sv.add_argument("--host", required=True)
    sv.add_argument("action", choices=("start", "stop", "status"))

    sf = add("service-fault", cmd_service_fault, "make a client's SMS client service fail to start")
    sf.add_argument("--host", required=True)
    sf.add_argument("--clear", action="store_true", help="let it start again")

    rb = add("reboot", cmd_reboot, "the twin's reboot of a client: its processes end and start again (test hook)")
    rb.add_argument("--host", required=True)

    add("status", cmd_status, "print the lab's state as JSON")

    py = add("payload", cmd_payload, "write the stand-in hotfix payload", root=False)
    py.add_argument("--out", required=True)

    inv = add("inventory", cmd_inventory, "print the lab inventory", root=False)
    inv.add_argument("--root")
    inv.add_argument("--static", action="store_true",
                     help="the committed version (Jinja expressions instead of paths)")
    inv.add_argument("--logon-servers", type=int, default=2)
    inv.add_argument("--clients", type=int, default=12)
    inv.add_argument("--alpha", type=int, default=2)

    m = add("mm", cmd_mm, "run the Maintenance Manager twin (build starts it)")
    m.add_argument("--cycle", type=float, default=None)
    m.add_argument("--idle-timeout", type=float, default=None)
    m.add_argument("--detach", action="store_true", help="start it in the background and return")

    h = sub.add_parser("_smsrun32", help=argparse.SUPPRESS)
    h.add_argument("--root", required=True)
    h.add_argument("--host", required=True)
    h.add_argument("--image", required=True)
    h.add_argument("--mode", choices=("idle", "hung"), default="idle")
    h.add_argument("--lifetime", type=float, default=smsrun.HEALTHY_LIFETIME)
    h.add_argument("--cpu", type=float, default=smsrun.HUNG_CPU)
    h.add_argument("--stubborn", action="store_true")
    h.add_argument("--comm", default="SMSRUN32")
    h.set_defaults(func=cmd_smsrun32_body)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    return args.func(args) or 0
