"""The cost of the watch of the cure (sms_proc.watch), per client.

A client's watch runs inside its upgrade's module process: it lasts its
window in wall time (the clients of a wave are watched at once, one per fork)
and costs CPU for reading the process table and sampling each SMSRUN32 at
every look. This measures that CPU per client and per second of window, on a
machine whose process table holds N SMSRUN32 stand-ins of other clients (the
lab's drive scope reads the whole table each look), for a few intervals.

    .venv/bin/python benchmarks/watch_cost.py [--window 2] [--others 0 12 48] [--out results/]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc  # noqa: E402

CHILD = (
    "import ctypes, sys, time\nctypes.CDLL(None).prctl(15, b'SMSRUN32', 0, 0, 0)\n"
    "end = time.monotonic() + 600\nwhile time.monotonic() < end:\n    time.sleep(0.2)\n"
)


def spawn(drive):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, "--image=%s/MS/SMS/BIN/Smsrun32.exe" % drive], stdin=subprocess.DEVNULL
    )


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--intervals", type=float, nargs="+", default=[1.0, 0.25])
    parser.add_argument("--others", type=int, nargs="+", default=[0, 12, 48])
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    top = tempfile.mkdtemp(prefix="sms-watch-")
    procs = []
    try:
        mine = os.path.join(top, "client00")
        procs.append(spawn(mine))
        for others in sorted(args.others):
            while len(procs) - 1 < others:
                procs.append(spawn(os.path.join(top, "client%02d" % len(procs))))
            time.sleep(0.5)
            for interval in args.intervals:
                began_cpu, began = cpu(), time.monotonic()
                seen = sms_proc.watch("SMSRUN32", "drive", mine, args.window, interval, 90)
                spent_cpu, wall = cpu() - began_cpu, time.monotonic() - began
                assert seen["result"] == "healthy", seen
                rows.append(
                    {
                        "other_smsrun32": others,
                        "processes_in_table": len(os.listdir("/proc")),
                        "window_s": args.window,
                        "interval_s": interval,
                        "looks": seen["looks"],
                        "wall_s": round(wall, 3),
                        "cpu_ms": round(spent_cpu * 1000, 1),
                        "cpu_ms_per_look": round(spent_cpu * 1000 / seen["looks"], 2),
                        "cpu_ms_per_window_second": round(spent_cpu * 1000 / args.window, 2),
                    }
                )
                print(json.dumps(rows[-1]))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if os.path.isdir(top) and not os.listdir(top):
            os.rmdir(top)
    if args.out:
        path = os.path.join(args.out, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-watch.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"load": os.getloadavg(), "cores": os.cpu_count(), "rows": rows}, handle, indent=1)
        print("written", path)


if __name__ == "__main__":
    main()
