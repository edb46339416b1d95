"""Building and tearing down a lab tree."""

import json
import os
import shutil
import time

from . import common, content, inventory, mm, procs, smsrun
from .spec import PLATFORM_DIRS, PLATFORMS


class LabError(Exception):
    pass


def _write(path, data, mtime_ns):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _client_files(root_dir, platform, renames, blobs, mtime):
    for name in content.ORIGINALS[platform]:
        on_disk = renames.get(name, name)
        _write(os.path.join(root_dir, on_disk), blobs[(platform, name)], mtime)


def _fix_dir_mtimes(top, mtime_ns):
    for folder, _dirs, _files in os.walk(top, topdown=False):
        os.utime(folder, ns=(mtime_ns, mtime_ns))


def write_tree(root, spec, tool=common.TOOL):
    """Write lab.json, hosts/ and inventory.yml (no processes, no run/)."""
    text_ns = common.utc_ns(content.TEXT_MTIME)
    orig_ns = common.utc_ns(content.ORIGINAL_MTIME)
    blobs = {(p, n): content.original_bytes(p, n) for p in PLATFORMS for n in content.ORIGINALS[p]}

    _write(os.path.join(root, common.LAB_JSON),
           (json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
           text_ns)

    site = common.host_dir(root, spec.site_server)
    _write(os.path.join(site, "SMS", "System.map"), content.system_map_text(), text_ns)
    for p in PLATFORMS:
        folder = os.path.join(mm.client_src(root), PLATFORM_DIRS[p])
        renames = {"Smsrun32.exe": "SMSRUN32.EXE"} if p == "x86" else {}
        _client_files(folder, p, renames, blobs, orig_ns)

    for server in spec.logon_server_names:
        base = mm.logon_srv(root, server)
        for p in PLATFORMS:
            _client_files(os.path.join(base, PLATFORM_DIRS[p]), p, {}, blobs, orig_ns)
        for name in content.COPY_LISTS:
            _write(os.path.join(base, name),
                   content.copy_list_text(name, content.INITIAL_COPY_LIST_VERSION), text_ns)

    for client in spec.client_names:
        home = common.host_dir(root, client)
        _write(os.path.join(home, "SMS.INI"), content.sms_ini_text(spec, client), text_ns)
        renames = {"Smssrv32.exe": "SMSSRV32.EXE"} if client == spec.upper_smssrv_client else {}
        _client_files(os.path.join(home, "MS", "SMS", "BIN"), spec.platform(client),
                      renames, blobs, orig_ns)

    _fix_dir_mtimes(os.path.join(root, common.HOSTS), text_ns)
    _write(os.path.join(root, common.INVENTORY),
           inventory.render(root, tool, spec).encode("utf-8"), text_ns)


def build(root, spec, tool=None):
    """(Re)build the lab at `root` and start its processes. `tool` is the
    sms-lab path the inventory names (default: this one). Returns a summary."""
    root = common.lab_root(root)
    if os.path.exists(root):
        down(root)
    os.makedirs(root)
    write_tree(root, spec, tool or common.TOOL)
    rdir = common.run_dir(root)
    os.makedirs(rdir)
    common.write_json(os.path.join(rdir, mm.STATE), mm.initial_state(root, spec))
    mm.write_skip(root, spec.skip)

    summary = {"root": root, "mm_pid": None, "smsrun32": {}}
    if spec.mm:
        summary["mm_pid"] = mm.start_detached(root, spec.cycle, spec.idle_timeout)
    if spec.smsrun:
        for client in spec.client_names:
            summary["smsrun32"][client] = smsrun.spawn(
                root, client, hung=client in spec.hung_clients, wait=0)
        # wait until every instance has its name, so callers see them at once
        for pids in summary["smsrun32"].values():
            for pid in pids:
                for _attempt in range(200):
                    if procs.comm(pid) == "SMSRUN32" or not procs.alive(pid):
                        break
                    time.sleep(0.02)
    return summary


def down(root, keep_files=False):
    """Stop every process of the lab and remove it. Returns pids not stopped."""
    root = common.lab_root(root)
    if not os.path.exists(root):
        return []
    if not os.path.isdir(root):
        raise LabError("%s is not a directory" % root)
    entries = set(os.listdir(root))
    if entries and common.LAB_JSON not in entries and not entries <= common.LAB_TOP_LEVEL:
        raise LabError("refusing to touch %s: it does not look like a lab root "
                       "(no lab.json, holds %s)" % (root, ", ".join(sorted(entries)[:5])))
    candidates = set()
    rdir = common.run_dir(root)
    if os.path.isdir(rdir):
        for name in os.listdir(rdir):
            if name.endswith(".pid"):
                try:
                    with open(os.path.join(rdir, name)) as fh:
                        pid = int(fh.read().strip())
                except (OSError, ValueError):
                    continue
                args = procs.cmdline(pid)
                if pid != os.getpid() and procs.is_lab_tool(args) and procs.refers_to(args, root):
                    candidates.add(pid)
    left = []
    for _round in range(3):
        candidates |= set(procs.lab_processes(root))
        if not candidates:
            break
        left = procs.stop(sorted(candidates))
        candidates = set(left)
    if not keep_files:
        shutil.rmtree(root, ignore_errors=True)
        if os.path.exists(root):
            shutil.rmtree(root)
    return left
