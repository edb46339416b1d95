"""The Maintenance Manager twin: a background process on the site server.

Each pass (every `cycle` s, or at once when <root>/run/mm.trigger appears):
1. copies every file of Client.src/<Platform>.bin that is missing or differs
   to Logon.srv/<Platform>.bin on every logon server not in run/mm.skip
   (case-insensitive names, the on-disk name kept, atomic, source mtime kept);
2. if System.map's mtime changed since the last pass, regenerates the copy
   lists on every non-skipped logon server with CopyListVersion + 1 (a server
   that was skipped catches up on the first pass it is no longer skipped);
3. counts the pass in run/mm.state.json and logs a line to run/mm.log.
"""

import os
import signal
import subprocess
import sys
import time

from . import common, content, procs
from .spec import INITIAL_COPY_LIST_VERSION, SITE_SERVER, Spec

STATE = "mm.state.json"
PID = "mm.pid"
TRIGGER = "mm.trigger"
SKIP = "mm.skip"
LOG = "mm.log"


def paths(root):
    rdir = common.run_dir(root)
    return {k: os.path.join(rdir, v) for k, v in
            (("state", STATE), ("pid", PID), ("trigger", TRIGGER), ("skip", SKIP), ("log", LOG))}


def system_map(root):
    return os.path.join(common.host_dir(root, SITE_SERVER), "SMS", "System.map")


def client_src(root):
    return os.path.join(common.host_dir(root, SITE_SERVER),
                        "SMS", "Site.srv", "Maincfg.box", "Client.src")


def logon_srv(root, server):
    return os.path.join(common.host_dir(root, server), "SMS", "Logon.srv")


def read_skip(root):
    return sorted({l.lower() for l in common.read_lines(paths(root)["skip"])})


def write_skip(root, names):
    text = "".join("%s\n" % n for n in sorted(set(names)))
    common.atomic_write(paths(root)["skip"], text.encode("ascii"))


def initial_state(root, spec):
    try:
        map_ns = os.stat(system_map(root)).st_mtime_ns
    except OSError:
        map_ns = None
    return {
        "passes": 0,
        "copy_list_version": INITIAL_COPY_LIST_VERSION,
        "system_map_mtime_ns": map_ns,
        "servers": {s: INITIAL_COPY_LIST_VERSION for s in spec.logon_server_names},
        "last_pass_started": None,
        "last_pass_finished": None,
        "last_pass_changes": 0,
    }


def read_state(root):
    return common.read_json(paths(root)["state"])


def write_copy_lists(root, server, version, mtime_ns=None):
    folder = logon_srv(root, server)
    os.makedirs(folder, exist_ok=True)
    for name in content.COPY_LISTS:
        on_disk = common.find_ci(folder, name) or name
        common.atomic_write(os.path.join(folder, on_disk),
                            content.copy_list_text(name, version), mtime_ns)


def _replicate(root, servers, log):
    """Step 1. Returns the number of files copied (or re-dated)."""
    src_root = client_src(root)
    copied = 0
    try:
        platform_dirs = sorted(d for d in os.listdir(src_root)
                               if os.path.isdir(os.path.join(src_root, d)))
    except OSError:
        log("Client.src missing: %s" % src_root)
        return 0
    for pdir in platform_dirs:
        src_dir = os.path.join(src_root, pdir)
        # dot-files are somebody's temp files (ours, Ansible's atomic_move): never served
        names = sorted(n for n in os.listdir(src_dir)
                       if not n.startswith(".") and os.path.isfile(os.path.join(src_dir, n)))
        for name in names:
            try:
                with open(os.path.join(src_dir, name), "rb") as fh:
                    src_ns = os.fstat(fh.fileno()).st_mtime_ns
                    data = fh.read()
            except OSError:
                continue  # vanished under us; next pass
            for server in servers:
                base = logon_srv(root, server)
                dest_pdir = common.find_ci(base, pdir) or pdir
                dest_dir = os.path.join(base, dest_pdir)
                os.makedirs(dest_dir, exist_ok=True)
                dest_name = common.find_ci(dest_dir, name) or name
                dest = os.path.join(dest_dir, dest_name)
                where = "%s:Logon.srv/%s/%s" % (server, dest_pdir, dest_name)
                try:
                    st = os.stat(dest)
                    same = st.st_size == len(data)
                    if same:
                        with open(dest, "rb") as fh:
                            same = fh.read() == data
                except OSError:
                    same = False
                if same:
                    if st.st_mtime_ns != src_ns:  # same bytes, other date: carry the date
                        os.utime(dest, ns=(src_ns, src_ns))
                        copied += 1
                        log("date of %s set from %s/%s" % (where, pdir, name))
                    continue
                common.atomic_write(dest, data, src_ns)
                copied += 1
                log("copied %s/%s -> %s" % (pdir, name, where))
    return copied


def do_pass(root, state, log):
    """One Maintenance Manager pass; mutates and returns `state`."""
    state["last_pass_started"] = time.time()
    skip = set(read_skip(root))
    spec = Spec.from_dict(common.read_json(os.path.join(root, common.LAB_JSON), {}))
    servers = [s for s in spec.logon_server_names if s not in skip]
    changes = _replicate(root, servers, log)

    try:
        map_ns = os.stat(system_map(root)).st_mtime_ns
    except OSError:
        map_ns = None
        log("System.map missing: %s" % system_map(root))
    if map_ns is not None and map_ns != state.get("system_map_mtime_ns"):
        state["copy_list_version"] = int(state.get("copy_list_version", INITIAL_COPY_LIST_VERSION)) + 1
        state["system_map_mtime_ns"] = map_ns
        log("System.map timestamp changed: new CopyListVersion %d" % state["copy_list_version"])
    version = state["copy_list_version"]
    per_server = state.setdefault("servers", {})
    for server in servers:
        if per_server.get(server) != version:
            write_copy_lists(root, server, version)
            per_server[server] = version
            changes += 1
            log("copy lists on %s regenerated: CopyListVersion=%d" % (server, version))

    state["passes"] = int(state.get("passes", 0)) + 1
    state["last_pass_finished"] = time.time()
    state["last_pass_changes"] = changes
    state["pid"] = os.getpid()
    common.write_json(paths(root)["state"], state)
    log("pass %d done: %d change(s); skipped: %s"
        % (state["passes"], changes, ", ".join(sorted(skip)) or "none"))
    return state


def serve(root, cycle, idle_timeout, poll=0.1):
    """The twin's main loop (the `mm` command). Returns an exit code."""
    p = paths(root)
    rdir = common.run_dir(root)
    if not os.path.isdir(rdir):
        print("sms-lab mm: %s does not exist (build the lab first)" % rdir, file=sys.stderr)
        return 2
    procs.set_comm("sms-lab-mm")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))

    def log(msg):
        try:
            with open(p["log"], "a", encoding="utf-8") as fh:
                fh.write("%s [%d] %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), msg))
        except OSError:
            pass

    common.atomic_write(p["pid"], ("%d\n" % os.getpid()).encode("ascii"))
    state = read_state(root)
    if not state:
        spec = Spec.from_dict(common.read_json(os.path.join(root, common.LAB_JSON), {}))
        state = initial_state(root, spec)
    log("maintenance manager twin started: cycle %gs, idle timeout %gs" % (cycle, idle_timeout))
    next_pass = time.monotonic() + cycle
    last_activity = time.monotonic()
    reason = "SIGTERM"
    try:
        while not stopping:
            if not os.path.isdir(rdir):
                reason = "run directory removed"
                break
            now = time.monotonic()
            triggered = os.path.exists(p["trigger"])
            if triggered or now >= next_pass:
                if triggered:
                    try:
                        os.unlink(p["trigger"])
                    except OSError:
                        pass
                try:
                    state = do_pass(root, state, log)
                except OSError as exc:
                    if not os.path.isdir(rdir):
                        reason = "run directory removed"
                        break
                    log("pass failed: %s" % exc)
                next_pass = time.monotonic() + cycle
                if triggered or state.get("last_pass_changes"):
                    last_activity = time.monotonic()
            elif now - last_activity > idle_timeout:
                reason = "idle for %gs" % idle_timeout
                break
            time.sleep(poll)
    finally:
        log("maintenance manager twin exiting: %s" % reason)
        try:
            with open(p["pid"]) as fh:
                if int(fh.read().strip() or 0) == os.getpid():
                    os.unlink(p["pid"])
        except (OSError, ValueError):
            pass
    return 0


def pid_of(root):
    """The live twin's pid, or None."""
    try:
        with open(paths(root)["pid"]) as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        pid = None
    if pid and procs.alive(pid) and procs.refers_to(procs.cmdline(pid), root) \
            and "mm" in procs.cmdline(pid):
        return pid
    # pid file missing or stale: look for the process itself
    for cand in procs.lab_processes(root):
        args = procs.cmdline(cand)
        if "mm" in args:
            return cand
    return None


def start_detached(root, cycle, idle_timeout):
    """Start the twin in the background; returns its pid (also in run/mm.pid)."""
    rdir = common.run_dir(root)
    argv = [sys.executable, common.TOOL, "mm", "--root", root,
            "--cycle", repr(float(cycle)), "--idle-timeout", repr(float(idle_timeout))]
    with open(os.path.join(rdir, LOG), "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True, cwd="/")
    common.atomic_write(paths(root)["pid"], ("%d\n" % proc.pid).encode("ascii"))
    return proc.pid


def pass_now(root, wait=True, timeout=30.0):
    """Ask for a pass; with wait, block until a pass that started after the
    request has finished. Returns (ok, message)."""
    pid = pid_of(root)
    if pid is None:
        return False, ("the Maintenance Manager twin of the lab at %s is not running "
                       "(start it with: sms-lab mm --root %s --detach)" % (root, root))
    before = read_state(root) or {}
    requested = time.time()
    common.atomic_write(paths(root)["trigger"], ("%r\n" % requested).encode("ascii"))
    if not wait:
        return True, "pass requested from the twin (pid %d)" % pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = read_state(root) or {}
        started = st.get("last_pass_started") or 0
        if (st.get("passes", 0) > before.get("passes", 0) and started >= requested
                and (st.get("last_pass_finished") or 0) >= started):
            return True, ("pass %d done: %d change(s), CopyListVersion %s"
                          % (st["passes"], st.get("last_pass_changes", 0), st.get("copy_list_version")))
        if not procs.alive(pid):
            return False, "the Maintenance Manager twin (pid %d) exited before the pass" % pid
        time.sleep(0.05)
    return False, "no pass of the Maintenance Manager twin within %gs (pid %d)" % (timeout, pid)
