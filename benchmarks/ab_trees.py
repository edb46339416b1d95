"""A/B of two trees of this collection on one lab, in one run, both orders (issue 24).

    .venv/bin/python benchmarks/ab_trees.py --clients 100 --rounds 3 A_TREE B_TREE

A_TREE and B_TREE are two copies of the checkout (say `git archive` of two
commits, each with the payload: `make payload`). One lab of --clients
clients is built and prepared once with A's playbooks (plan, site, logon:
not measured), the clients upgraded once (not measured); then each round
runs `playbooks/clients.yml` from A and from B on the up-to-date clients
(every client's task templated and its module run, nothing to change) and
the ping floor (`benchmarks/playbooks/ping_floor.yml`), the order of A and B
swapped every round (A B floor, B A floor, ...). Each run must exit 0 with
no client changed or failed, or the A/B stops: a fast wrong run is no result.
Prints wall and CPU seconds (the playbook's whole process tree) per run and
each tree's ratios to the floor of its round; the CPU ratio is the one a
loaded machine disturbs least.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

WAVES = [1, "10%", "50%", "100%"]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run(tree, playbook, inventory, work, tag, check_clean=True):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(tree, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        SMS_REPORT_DIR=os.path.join(work, "reports", tag),
    )
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
        "-i",
        inventory,
        os.path.join(tree, playbook),
        "-e",
        json.dumps({"sms_rollout_waves": WAVES}),
    ]
    start, used = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    with open(os.path.join(work, tag + ".log"), "w", encoding="utf-8") as handle:
        handle.write(done.stdout + done.stderr)
    recap = RECAP.findall(done.stdout)
    bad = [r for r in recap if r[0].startswith("client") and (int(r[4]) or int(r[3]) or (check_clean and int(r[2])))]
    if done.returncode != 0 or bad or not recap:
        sys.exit(
            "A/B FAILED: %s (%s) exited %d; hosts changed/failed: %s; log %s"
            % (tag, playbook, done.returncode, bad[:5], os.path.join(work, tag + ".log"))
        )
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a_tree")
    parser.add_argument("b_tree")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    a_tree, b_tree = os.path.abspath(args.a_tree), os.path.abspath(args.b_tree)
    work = tempfile.mkdtemp(prefix="sms-ab-")
    lab = os.path.join(work, "lab")
    sms_lab = os.path.join(a_tree, "lab", "sms-lab")
    subprocess.run(
        [sys.executable, sms_lab, "build", "--root", lab, "--clients", str(args.clients), "--no-smsrun"],
        check=True,
        capture_output=True,
    )
    inventory = os.path.join(lab, "inventory.yml")
    try:
        for playbook in ("playbooks/site.yml", "playbooks/logon.yml"):
            run(a_tree, playbook, inventory, work, "prepare-" + os.path.basename(playbook), check_clean=False)
        run(a_tree, "playbooks/clients.yml", inventory, work, "upgrade", check_clean=False)
        rows = []
        for round_no in range(args.rounds):
            order = [("A", a_tree), ("B", b_tree)] if round_no % 2 == 0 else [("B", b_tree), ("A", a_tree)]
            got = {}
            for name, tree in order:
                got[name] = run(tree, "playbooks/clients.yml", inventory, work, "%s.%d" % (name, round_no))
            got["floor"] = run(
                a_tree, "benchmarks/playbooks/ping_floor.yml", inventory, work, "floor.%d" % round_no, check_clean=False
            )
            rows.append(got)
            print(
                "round %d (%s then floor): wall A %.1f s, B %.1f s, floor %.1f s (A %.2fx, B %.2fx); "
                "CPU A %.1f s, B %.1f s, floor %.1f s (A %.2fx, B %.2fx)"
                % (
                    round_no,
                    "".join(n for n, _t in order),
                    got["A"][0],
                    got["B"][0],
                    got["floor"][0],
                    got["A"][0] / got["floor"][0],
                    got["B"][0] / got["floor"][0],
                    got["A"][1],
                    got["B"][1],
                    got["floor"][1],
                    got["A"][1] / got["floor"][1],
                    got["B"][1] / got["floor"][1],
                ),
                flush=True,
            )
        for name in ("A", "B"):
            for index, kind in ((0, "wall"), (1, "CPU")):
                ratios = [got[name][index] / got["floor"][index] for got in rows]
                print(
                    "%s: %s %.2f-%.2fx the floor (mean %.2f)"
                    % (name, kind, min(ratios), max(ratios), sum(ratios) / len(ratios))
                )
    finally:
        subprocess.run([sys.executable, sms_lab, "down", "--root", lab], check=False, capture_output=True)
    print("logs: %s" % work)


if __name__ == "__main__":
    main()
