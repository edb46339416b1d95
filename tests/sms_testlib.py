"""Small fixture builders for unit tests: a hotfix, a site server, a logon
server and a client, in a temp folder, independent of the lab twin (the lab
is exercised by tests/lab and tests/e2e)."""

import hashlib
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "collections")

# Python source counting every compile() by file name (the part after ".zip/"
# for a file in a zip) into `compiled`: run first in a fresh interpreter.
COMPILE_COUNTER = r"""
import builtins
compiled, _real_compile = {}, builtins.compile
def _counting(source, filename, *args, **kwargs):
    name = str(filename).split(".zip/", 1)[-1]
    compiled[name] = compiled.get(name, 0) + 1
    return _real_compile(source, filename, *args, **kwargs)
builtins.compile = _counting
"""


# Suites whose session fixture is one shared world (the fleet: fixed network
# namespaces; Samba: its namespace and test account): each runs whole in one
# pytest-xdist worker (tests/conftest.py).
SERIAL_SUITES = ("fleet", "smb")


def xdist_scope(nodeid):
    """The scope a test runs in under `make test`: its suite (SERIAL_SUITES) or its file."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in SERIAL_SUITES:
        return "/".join(parts[:2])
    return path


def install_collection_loader():
    """Make `ansible_collections.sms.hotfix` (this checkout) importable, once per process."""
    import sys
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    if any(isinstance(f, _AnsibleCollectionFinder) for f in sys.meta_path):
        return
    _AnsibleCollectionFinder(paths=[COLLECTIONS])._install()


install_collection_loader()
CRLF = b"\r\n"
HOTFIX_DATE = {"Smsrun32.exe": "1999-01-14T23:21:00Z", "Smssrv32.exe": "1999-02-04T22:27:00Z"}
SIZES = {"x86": 4096, "alpha": 6144}
DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin"}


def blob(seed, size):
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(("%s:%d" % (seed, counter)).encode()).digest()
        counter += 1
    return bytes(out[:size])


def sha(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as handle:
        return sha(handle.read())


def write(path, data, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def make_hotfix(root, platforms=("x86", "alpha"), kb="Q216552"):
    """A manifest plus payload under root/hotfix; returns the manifest path."""
    base = os.path.join(str(root), "hotfix")
    manifest = {
        "schema": 1,
        "kb": kb,
        "title": "test hotfix",
        "product": "Microsoft Systems Management Server",
        "version": "1.2",
        "platforms": {},
    }
    for platform in platforms:
        files = []
        for name in ("Smsrun32.exe", "Smssrv32.exe"):
            data = blob("hotfix:%s:%s" % (platform, name), SIZES[platform])
            relative = "payload/%s/%s" % (DIRS[platform], name)
            write(os.path.join(base, relative), data)
            files.append(
                {
                    "name": name,
                    "size": len(data),
                    "date": HOTFIX_DATE[name],
                    "sha256": sha(data),
                    "payload": relative,
                    "service": name == "Smssrv32.exe",
                }
            )
        manifest["platforms"][platform] = {"files": files}
    path = os.path.join(base, "manifest.json")
    with open(path, "w") as handle:
        json.dump(manifest, handle, indent=2)
    return path


def original_files(platform):
    """The pre-hotfix client files of a platform: name -> bytes."""
    return {
        name: blob("original:%s:%s" % (platform, name), 3000 + i * 100)
        for i, name in enumerate(("Smsrun32.exe", "Smssrv32.exe", "Cli_nt.exe"))
    }


ORIGINAL_MTIME = 898516800  # 1998-06-22T12:00:00Z


def make_site(root, platforms=("x86", "alpha"), upper_run=True):
    """A site server's SMS root under root/site/SMS; returns the SMS root."""
    sms = os.path.join(str(root), "site", "SMS")
    write(os.path.join(sms, "System.map"), b"[System Map]" + CRLF + b"Site=LAB" + CRLF, ORIGINAL_MTIME)
    for platform in platforms:
        folder = os.path.join(sms, "Site.srv", "Maincfg.box", "Client.src", DIRS[platform])
        for name, data in original_files(platform).items():
            if upper_run and name == "Smsrun32.exe":
                name = name.upper()
            write(os.path.join(folder, name), data, ORIGINAL_MTIME)
    return sms


def make_logon(root, name="logon01", platforms=("x86", "alpha"), version=41):
    """A logon server's SMS root under root/<name>/SMS; returns the SMS root."""
    sms = os.path.join(str(root), name, "SMS")
    for platform in platforms:
        for fname, data in original_files(platform).items():
            write(os.path.join(sms, "Logon.srv", DIRS[platform], fname), data, ORIGINAL_MTIME)
    for copy_list in ("Cl_nt.txt", "Cl_win95.txt"):
        write(
            os.path.join(sms, "Logon.srv", copy_list),
            b"[Copy List]" + CRLF + b"CopyListVersion=%d" % version + CRLF + b"[Files]" + CRLF + b"Smsrun32.exe" + CRLF,
        )
    return sms


def sms_ini(server="LOGON01", version=41, phase="installed"):
    return CRLF.join(
        [
            b"; SMS.INI written by SMS Client Setup",
            b"[SMS]",
            b"SMS_Unique_ID=LAB00001",
            b"CopyListVersion=%d" % version,
            b"SMS_Local_Dir=C:\\MS\\SMS",
            b"[Servers]",
            b"Current_Logon_Server=\\\\%s\\SMS_SHR" % server.encode(),
            b"[Local]",
            b"SetupPhase=%s" % phase.encode(),
            b"[Inventory Agent]",
            b"Hardware_Scan = 1",
            b"",
        ]
    )


def make_client(root, name="client01", platform="x86", server="LOGON01", version=41):
    """A client drive root under root/<name>; returns the drive root."""
    drive = os.path.join(str(root), name)
    write(os.path.join(drive, "SMS.INI"), sms_ini(server, version))
    for fname, data in original_files(platform).items():
        write(os.path.join(drive, "MS", "SMS", "BIN", fname), data, ORIGINAL_MTIME)
    return drive


def snapshot(root):
    """Every file below root: relative path -> (sha256, size, mtime)."""
    state = {}
    for folder, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                data = handle.read()
            st = os.stat(path)
            state[os.path.relpath(path, str(root))] = (sha(data), st.st_size, int(st.st_mtime))
    return state


def enospc_on(monkeypatch, marker, count):
    """Make the `count`-th copy whose target path holds `marker` fail with ENOSPC, as a full disk would.

    Every copy of the modules goes through sms_fs.LocalVolume.copy_from; returns the call counter.
    """
    import errno
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_fs

    real = sms_fs.LocalVolume.copy_from
    calls = {"n": 0}

    def copy(volume, source, src_parts, parts, **kwargs):
        dest = volume.path(parts)
        if marker in dest:
            calls["n"] += 1
            if calls["n"] == count:
                raise sms_fs.SmsFileError(
                    sms_fs.describe_os_error(OSError(errno.ENOSPC, "No space left"), dest), path=dest
                )
        return real(volume, source, src_parts, parts, **kwargs)

    monkeypatch.setattr(sms_fs.LocalVolume, "copy_from", copy)
    return calls


def disk_fills_at(monkeypatch, marker, count, fill=None):
    """The `count`-th copy whose target path holds `marker` finds the disk full, and it stays full.

    With `fill` (a callable that fills a real small file system) the disk is
    filled for real right before that copy; without it, that copy and every
    later write into `marker` (a put-back included) fail with ENOSPC as a
    full disk would. Returns the call counter.
    """
    import errno
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_fs

    real_copy, real_write = sms_fs.LocalVolume.copy_from, sms_fs.LocalVolume.write
    calls = {"n": 0, "full": False}

    def enospc(dest):
        return sms_fs.SmsFileError(sms_fs.describe_os_error(OSError(errno.ENOSPC, "No space left"), dest), path=dest)

    def copy(volume, source, src_parts, parts, **kwargs):
        if marker in volume.path(parts):
            calls["n"] += 1
            if calls["n"] == count:
                calls["full"] = True
                if fill is not None:
                    fill()
        return real_copy(volume, source, src_parts, parts, **kwargs)

    def write(volume, parts, chunks, **kwargs):
        if calls["full"] and fill is None and marker in volume.path(parts):
            raise enospc(volume.path(parts))
        return real_write(volume, parts, chunks, **kwargs)

    monkeypatch.setattr(sms_fs.LocalVolume, "copy_from", copy)
    monkeypatch.setattr(sms_fs.LocalVolume, "write", write)
    return calls
