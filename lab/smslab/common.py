"""Small shared helpers: paths, fixed dates, atomic writes, deterministic bytes."""

import datetime
import hashlib
import json
import os

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(LAB_DIR, "sms-lab")

RUN = "run"
LAB_JSON = "lab.json"
INVENTORY = "inventory.yml"
HOSTS = "hosts"

# Names a lab root may hold; `down` refuses to remove a directory holding others
# unless it has a lab.json (protects against `--root ~` typos).
LAB_TOP_LEVEL = {RUN, LAB_JSON, INVENTORY, HOSTS}


def utc_ns(text):
    """'1999-01-14T23:21:00Z' -> nanoseconds since the epoch."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000


def lab_root(path):
    """The canonical form of a lab root used everywhere (cmdlines, inventory)."""
    return os.path.abspath(os.path.expanduser(path))


def run_dir(root):
    return os.path.join(root, RUN)


def host_dir(root, host):
    return os.path.join(root, HOSTS, host)


def stream(seed, size):
    """`size` bytes of SHA-256 counter stream seeded by `seed` (str)."""
    base = hashlib.sha256(seed.encode("utf-8")).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(base + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def atomic_write(path, data, mtime_ns=None):
    """Write bytes via a temp file in the same folder and os.replace."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, ".~%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, obj, mtime_ns=None):
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, text.encode("utf-8"), mtime_ns)


def read_json(path, default=None):
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return default


def crlf(lines):
    """INI text as bytes with CRLF endings (every line terminated)."""
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def find_ci(folder, name):
    """The on-disk name in `folder` matching `name` case-insensitively, or None."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return None
    low = name.lower()
    matches = sorted(e for e in entries if e.lower() == low)
    return matches[0] if matches else None


def read_lines(path):
    """Non-empty, non-comment lines of a small text file (missing file: [])."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read().splitlines()
    except OSError:
        return []
    return [l.strip() for l in raw if l.strip() and not l.strip().startswith("#")]
