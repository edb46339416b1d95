"""plugins/module_utils/sms_fs: the one file-access layer, tested against its contract.

A managed host's disk is untrusted (docs/DESIGN.md, threat model): every
name is a plain name, no link is followed anywhere, only regular files are
read, and a file is never written in place. Each rule has a test below that
fails when the rule is broken, and every refusal is checked for what it must
leave alone: the bytes and dates of everything outside the volume, and the
volume itself.
"""

import errno
import hashlib
import os
import re
import stat
import subprocess
import threading

import pytest
from sms_testlib import REPO

from ansible_collections.sms.hotfix.plugins.module_utils import sms_fs
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    LocalVolume,
    PathRefused,
    SmsFileError,
    describe_os_error,
    plain_name,
    split_rel,
)

OLD = 916356060  # 1999-01-14T23:21:00Z, a date no test run can produce by accident
TMP_NAME = re.compile(r"^\.sms-tmp-(\d+)-([0-9a-f]{8})-(.+)$")


# -- helpers --------------------------------------------------------------------------------------
def put(path, data, mtime=OLD, mode=None):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "wb") as handle:
        handle.write(data)
    if mode is not None:
        os.chmod(str(path), mode)
    os.utime(str(path), (mtime, mtime))


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def snapshot(root, dir_dates=True):
    """Everything below `root` as lstat sees it: kind, bytes or link target, mode, mtime_ns, inode.

    Links are never followed and special files never opened, so taking the
    snapshot cannot itself block or read outside. `dir_dates=False` leaves out
    folders' dates, which move when a temporary file comes and goes.
    """
    out = {}

    def visit(path, rel):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns if dir_dates else None)
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), os.path.join(rel, name))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", read(path), stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_ino)
        else:
            out[rel] = ("other", stat.S_IFMT(st.st_mode), st.st_mtime_ns)

    visit(str(root), ".")
    return out


def temps_in(folder):
    return [name for name in os.listdir(str(folder)) if name.startswith(".sms-tmp-")]


def run_with_timeout(func, seconds=5.0):
    """(still blocked, {'value'|'error': ...}) for func() run in a thread."""
    result = {}

    def target():
        try:
            result["value"] = func()
        except BaseException as exc:  # noqa: B902 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive(), result


def ro_bind(request, folder):
    """Make `folder` a read-only bind mount of itself (root ignores permission bits); unmounted after the test."""
    folder = str(folder)
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root; the os.access variant of this test runs instead")
    done = subprocess.run(["mount", "--bind", folder, folder], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(
            "cannot bind-mount here (%s); the os.access variant of this test runs instead" % done.stderr.strip()
        )

    def unmount():
        if subprocess.run(["umount", folder], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", folder], capture_output=True, check=False)

    request.addfinalizer(unmount)
    done = subprocess.run(["mount", "-o", "remount,bind,ro", folder], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot remount read-only here: %s" % done.stderr.strip())


class World:
    """A volume with links planted at every position, pointing at a folder outside it.

    vol/L            -> outside          (a child folder of the top is a link)
    vol/a/b/L        -> ../../../outside (a deep folder is a link, relative target)
    vol/a/D          -> outside/nothing  (a dangling link where a folder should be)
    vol/a/F          -> outside/f        (the file itself is a link)
    vol/a/G          -> outside/ghost    (the file itself is a dangling link)
    vol/a/L2         -> outside          (the entry itself is a link to an outside folder)
    """

    def __init__(self, tmp):
        self.tmp = tmp
        self.outside = tmp / "outside"
        put(self.outside / "f", b"OUTSIDE f: must never be read or written")
        put(self.outside / "F", b"OUTSIDE F")
        put(self.outside / "sub" / "f", b"OUTSIDE sub/f")
        put(self.outside / "sub" / "F", b"OUTSIDE sub/F")
        top = tmp / "vol"
        put(top / "a" / "plain.txt", b"plain")
        put(top / "a" / "b" / "kept.exe", b"kept")
        os.symlink(str(self.outside), str(top / "L"))
        os.symlink("../../../outside", str(top / "a" / "b" / "L"))
        os.symlink(str(self.outside / "nothing"), str(top / "a" / "D"))
        os.symlink(str(self.outside / "f"), str(top / "a" / "F"))
        os.symlink(str(self.outside / "ghost"), str(top / "a" / "G"))
        os.symlink(str(self.outside), str(top / "a" / "L2"))
        put(tmp / "src" / "src.bin", b"source bytes")
        (tmp / "dest").mkdir()
        for folder in (self.outside / "sub", self.outside, top / "a" / "b", top / "a", top):
            os.utime(str(folder), (OLD, OLD))
        self.top = top
        self.vol = LocalVolume(str(top), label="client01's drive")
        self.src = LocalVolume(str(tmp / "src"))
        self.dest = LocalVolume(str(tmp / "dest"))

    def state(self, vol_dir_dates=True):
        # A copy out of the volume makes its temp file in `dest` before it reads
        # the source, so only dest's folder date may move on a refusal.
        return {
            "outside": snapshot(self.outside),
            "vol": snapshot(self.top, dir_dates=vol_dir_dates),
            "dest": snapshot(self.tmp / "dest", dir_dates=False),
            "ghosts": [os.path.lexists(str(self.outside / n)) for n in ("nothing", "ghost", "moved", "copy.bin")],
        }


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


# -- plain names and operator paths ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "SMSRUN32.EXE",
        "Smsrun32.exe",
        "X86.bin",
        "Client.src",
        "a b",
        "Q216552",
        ".sms-tmp-1-0123abcd-x",
        "journal.json",
        "\u00e9t\u00e9",
    ],
)
def test_plain_name_accepts_plain_names(name):
    assert plain_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "/etc",
        "a\\b",
        "\\\\server",
        "C:",
        "c:evil",
        "D:\\x",
        "a\0b",
        "\0",
        "*",
        "*.exe",
        "a?b",
        'a"b',
        "a<b",
        "a>b",
        "a|b",
        "name.",
        "name..",
        "...",
        "name ",
        " name",
        "\tname",
        "name\n",
        None,
        b"bytes",
        5,
    ],
)
def test_plain_name_refuses(name):
    with pytest.raises(PathRefused) as info:
        plain_name(name, "file name")
    assert "file name %r is not a plain file or folder name" % (name,) in info.value.msg
    assert info.value.msg.endswith("refused")


@pytest.mark.parametrize(
    "text, parts",
    [
        ("MS/SMS/BIN", ("MS", "SMS", "BIN")),
        ("MS\\SMS\\BIN", ("MS", "SMS", "BIN")),
        ("MS//SMS/./BIN/", ("MS", "SMS", "BIN")),
        ("Hotfix", ("Hotfix",)),
        ("", ()),
        (".", ()),
    ],
)
def test_split_rel_parts(text, parts):
    assert split_rel(text, "client_dir") == parts


@pytest.mark.parametrize(
    "text",
    [
        "..",
        "../tmp",
        "MS/../../etc",
        "MS\\..\\..\\tmp\\evil",
        "MS/SMS/..",
        "C:\\MS\\SMS",
        "C:/MS",
        "MS/c:x",
        "MS/SMS\0/BIN",
        "MS/*/BIN",
        "MS/SMS?/BIN",
        "MS/SMS./BIN",
        "MS/SMS /BIN",
        "MS/ SMS",
        "MS/a|b",
        "/",
        "\\\\",
    ],
)
def test_split_rel_refuses(text):
    with pytest.raises(PathRefused) as info:
        split_rel(text, "client_dir")
    assert "client_dir %r" % text in info.value.msg


def test_split_rel_of_an_absolute_looking_path_stays_below_the_volume(tmp_path):
    """A leading separator is read as the drive's root: the parts still address the volume, never /etc."""
    put(tmp_path / "vol" / "etc" / "passwd", b"inside")
    volume = LocalVolume(str(tmp_path / "vol"))
    parts = split_rel("/etc/passwd")
    assert parts == ("etc", "passwd")
    assert volume.read(parts) == b"inside"


# -- a symbolic link at every position, for every operation ---------------------------------------
# Each operation gets the parts of a file (`f`) and of a folder (`sub`); they
# hold real entries outside, so following the link would succeed.
OPS = {
    "entry": lambda w, f, d: w.vol.entry(f),
    "listdir": lambda w, f, d: w.vol.listdir(d),
    "find": lambda w, f, d: w.vol.find(d, "F"),
    "resolve": lambda w, f, d: w.vol.resolve(f),
    "read": lambda w, f, d: w.vol.read(f),
    "read_or_none": lambda w, f, d: w.vol.read_or_none(f),
    "chunks": lambda w, f, d: list(w.vol.chunks(f)),
    "sha256": lambda w, f, d: w.vol.sha256(f),
    "write": lambda w, f, d: w.vol.write_bytes(f, b"EVIL", mtime=1),
    "write_chunks": lambda w, f, d: w.vol.write(f, iter([b"EV", b"IL"])),
    "copy_from_into": lambda w, f, d: w.vol.copy_from(w.src, ("src.bin",), f),
    "copy_from_out": lambda w, f, d: w.dest.copy_from(w.vol, f, ("copy.bin",)),
    "makedirs": lambda w, f, d: w.vol.makedirs(d + ("new",)),
    "makedirs_itself": lambda w, f, d: w.vol.makedirs(d),
    "rename_from": lambda w, f, d: w.vol.rename(f, ("a", "moved")),
    "rename_to": lambda w, f, d: w.vol.rename(("a", "plain.txt"), f),
    "unlink": lambda w, f, d: w.vol.unlink(f),
    "set_mtime": lambda w, f, d: w.vol.set_mtime(f, 123456789),
    "writable_file": lambda w, f, d: w.vol.writable(f),
    "writable_folder": lambda w, f, d: w.vol.writable(d),
    "free_bytes": lambda w, f, d: w.vol.free_bytes(d),
    "existing": lambda w, f, d: w.vol.existing(d + ("new",)),
    "create_exclusive": lambda w, f, d: w.vol.create_exclusive(f, b"EVIL"),
    "rmdir": lambda w, f, d: w.vol.rmdir(d),
    "stale_temps": lambda w, f, d: w.vol.stale_temps(d),
    "clean_temps": lambda w, f, d: w.vol.clean_temps(d),
}
FOLDER_LINKS = {"top_child": ("L",), "deep": ("a", "b", "L"), "dangling": ("a", "D")}
# Operations on an entry that is itself a link. `entry`, `find`, `resolve`,
# `create_exclusive`, `rmdir` and `existing` answer without refusing; they
# have their own tests below.
ENTRY_LINKS = {"to_outside_file": ("a", "F"), "dangling": ("a", "G"), "to_outside_folder": ("a", "L2")}
ENTRY_OPS = [
    "listdir",
    "read",
    "read_or_none",
    "chunks",
    "sha256",
    "write",
    "write_chunks",
    "copy_from_into",
    "copy_from_out",
    "makedirs",
    "makedirs_itself",
    "rename_from",
    "rename_to",
    "unlink",
    "set_mtime",
    "writable_file",
    "writable_folder",
    "free_bytes",
    "stale_temps",
    "clean_temps",
]


def assert_refused_naming_link(world, link, func):
    before = world.state()
    with pytest.raises(PathRefused) as info:
        func()
    path = world.vol.path(link)
    assert path in info.value.msg, info.value.msg
    assert "symbolic link" in info.value.msg, info.value.msg
    assert info.value.facts.get("link") is True
    assert world.state() == before, "a refused operation changed something"


@pytest.mark.parametrize("position", sorted(FOLDER_LINKS))
@pytest.mark.parametrize("op", sorted(OPS))
def test_link_in_a_folder_position_is_refused(world, op, position):
    link = FOLDER_LINKS[position]
    assert_refused_naming_link(world, link, lambda: OPS[op](world, link + ("f",), link + ("sub",)))


@pytest.mark.parametrize("position", sorted(ENTRY_LINKS))
@pytest.mark.parametrize("op", ENTRY_OPS)
def test_entry_that_is_a_link_is_refused(world, op, position):
    link = ENTRY_LINKS[position]
    assert_refused_naming_link(world, link, lambda: OPS[op](world, link, link))


@pytest.mark.parametrize("position", sorted(ENTRY_LINKS))
def test_entry_of_a_link_describes_the_link_without_following_it(world, position):
    link = ENTRY_LINKS[position]
    before = world.state()
    entry = world.vol.entry(link)
    target = os.readlink(world.vol.path(link))
    assert entry.kind == "link" and entry.target == target and entry.exists
    assert entry.size == len(os.fsencode(target)), "the size is the link's own, not its target's"
    listed = {e.name: e for e in world.vol.listdir(("a",))}
    assert listed[link[-1]].kind == "link"
    # find and resolve name the link as it is on disk; using it is what is refused
    assert world.vol.find(("a",), link[-1].lower()) == link[-1]
    assert world.vol.resolve((link[-1].lower(),), base=("a",)) == link
    assert world.state() == before


@pytest.mark.parametrize("position", sorted(ENTRY_LINKS))
def test_create_exclusive_and_rmdir_leave_a_link_alone(world, position):
    link = ENTRY_LINKS[position]
    # create_exclusive may make (and remove) a temp file next to the name: folder dates may move
    before = world.state(vol_dir_dates=False)
    assert world.vol.create_exclusive(link, b"EVIL") is False
    assert world.vol.rmdir(link) is False
    assert world.state(vol_dir_dates=False) == before
    assert [n for n in os.listdir(str(world.top / "a")) if n.startswith(".sms-tmp-")] == []


@pytest.mark.parametrize("position", sorted(ENTRY_LINKS))
def test_existing_refuses_a_folder_that_is_a_link(world, position):
    link = ENTRY_LINKS[position]
    before = world.state()
    with pytest.raises(PathRefused) as info:
        world.vol.existing(link + ("new",))
    assert world.vol.path(link) in info.value.msg
    assert world.state() == before


# -- parts that leave the volume -------------------------------------------------------------------
ESCAPES = {
    "dotdot": ("..", "outside", "f"),
    "deep_dotdot": ("a", "..", "..", "outside", "f"),
    "separator": ("a/../../outside", "f"),
    "absolute": (None, "f"),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_parts_that_leave_the_volume_are_refused(world, op):
    for escape, parts in sorted(ESCAPES.items()):
        if parts[0] is None:
            parts = (str(world.outside), "f")
        before = world.state()
        with pytest.raises(PathRefused, match="not a plain file or folder name"):
            OPS[op](world, parts, parts[:-1])
        assert world.state() == before, "%s changed something" % escape


def test_makedirs_checks_every_name_before_creating_anything(world):
    """Bad input changes nothing: `new` must not be made before `..` is refused."""
    before = world.state()
    with pytest.raises(PathRefused):
        world.vol.makedirs(("new", ".."))
    assert not os.path.lexists(world.vol.path(("new",)))
    assert world.state() == before


@pytest.mark.parametrize("op", ["entry", "listdir"])
def test_a_non_plain_name_is_refused_even_below_a_missing_folder(world, op):
    """The answer to a bad path must not depend on what exists: `missing/..` is refused, not reported missing."""
    func = {
        "entry": lambda: world.vol.entry(("missing", "..")),
        "listdir": lambda: world.vol.listdir(("missing", "..", "x")),
    }[op]
    with pytest.raises(PathRefused):
        func()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_a_refused_name_leaks_no_descriptor(world):
    """Every operation closes the folder descriptors it opened, also when it refuses the last name."""
    leaked = {}
    for op in sorted(OPS):
        for bad in (("a", ".."), ("a", "b", "x/y")):
            before = open_fds()
            try:
                OPS[op](world, bad, bad)
            except (SmsFileError, IndexError):
                pass
            if open_fds() != before:
                leaked["%s%r" % (op, bad)] = open_fds() - before
    assert leaked == {}


EMPTY_PARTS_OPS = {
    "write": lambda v: v.write_bytes((), b"x"),
    "unlink": lambda v: v.unlink(()),
    "rmdir": lambda v: v.rmdir(()),
    "set_mtime": lambda v: v.set_mtime((), 1),
    "create_exclusive": lambda v: v.create_exclusive((), b"x"),
    "rename_from": lambda v: v.rename((), ("x",)),
    "rename_to": lambda v: v.rename(("a", "plain.txt"), ()),
    "read": lambda v: v.read(()),
}


@pytest.mark.parametrize("op", sorted(EMPTY_PARTS_OPS))
def test_empty_parts_for_a_file_get_a_clear_refusal(world, op):
    """`()` is the top folder, not a file: a clear PathRefused naming it, not an IndexError."""
    before = world.state()
    with pytest.raises(SmsFileError) as info:
        EMPTY_PARTS_OPS[op](world.vol)
    assert world.vol.top in info.value.msg
    assert world.state() == before


def test_a_file_in_a_folder_position_is_refused_naming_it(world):
    with pytest.raises(PathRefused) as info:
        world.vol.read(("a", "plain.txt", "x"))
    assert "%s is not a folder" % world.vol.path(("a", "plain.txt")) in info.value.msg
    with pytest.raises(PathRefused):
        world.vol.makedirs(("a", "plain.txt", "x"))
    assert read(world.top / "a" / "plain.txt") == b"plain"


# -- special files ---------------------------------------------------------------------------------
FIFO_OPS = {
    "read": lambda v, d, p: v.read(p),
    "read_or_none": lambda v, d, p: v.read_or_none(p),
    "sha256": lambda v, d, p: v.sha256(p),
    "chunks": lambda v, d, p: list(v.chunks(p)),
    "copy_from_out": lambda v, d, p: d.copy_from(v, p, ("copy.bin",)),
    "write": lambda v, d, p: v.write_bytes(p, b"x"),
    "copy_from_into": lambda v, d, p: v.copy_from(d, ("seed",), p),
    "read_below": lambda v, d, p: v.read(p + ("x",)),
}


@pytest.mark.parametrize("op", sorted(FIFO_OPS))
def test_a_fifo_is_refused_without_blocking(tmp_path, op):
    top = tmp_path / "vol"
    top.mkdir()
    fifo = top / "SMS.INI"
    os.mkfifo(str(fifo))
    put(tmp_path / "dest" / "seed", b"seed")
    volume, dest = LocalVolume(str(top)), LocalVolume(str(tmp_path / "dest"))
    before = (snapshot(top), snapshot(tmp_path / "dest", dir_dates=False))
    blocked, result = run_with_timeout(lambda: FIFO_OPS[op](volume, dest, ("SMS.INI",)))
    if blocked:  # let the stuck reader go before failing
        os.close(os.open(str(fifo), os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("%s blocked on a FIFO" % op)
    assert isinstance(result.get("error"), PathRefused), result
    assert str(fifo) in result["error"].msg
    assert "not a regular file" in result["error"].msg or "not a folder" in result["error"].msg
    assert (snapshot(top), snapshot(tmp_path / "dest", dir_dates=False)) == before
    assert volume.entry(("SMS.INI",)).kind == "other"


def test_a_device_is_refused(tmp_path):
    top = tmp_path / "vol"
    top.mkdir()
    try:
        os.mknod(str(top / "null.exe"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    volume = LocalVolume(str(top))
    for func in (volume.read, volume.sha256, lambda p: volume.write_bytes(p, b"x")):
        with pytest.raises(PathRefused) as info:
            func(("null.exe",))
        assert str(top / "null.exe") in info.value.msg and "not a regular file" in info.value.msg
    assert volume.entry(("null.exe",)).kind == "other"
    assert stat.S_ISCHR(os.lstat(str(top / "null.exe")).st_mode)


def test_a_folder_is_not_read_as_a_file(world):
    with pytest.raises(PathRefused) as info:
        world.vol.read(("a", "b"))
    assert "%s is a folder" % world.vol.path(("a", "b")) in info.value.msg
    with pytest.raises(PathRefused):
        world.vol.read(())
    with pytest.raises(PathRefused) as info:
        world.vol.write_bytes(("a", "b"), b"x")
    assert world.vol.path(("a", "b")) in info.value.msg
    assert sorted(os.listdir(str(world.top / "a" / "b"))) == ["L", "kept.exe"]


# -- reading ---------------------------------------------------------------------------------------
def test_entry_of_files_folders_and_missing(world):
    put(world.top / "a" / "SMSRUN32.EXE", b"12345", mtime=OLD, mode=0o640)
    entry = world.vol.entry(("a", "SMSRUN32.EXE"))
    assert (entry.kind, entry.size, entry.mtime, entry.mode, entry.name) == ("file", 5, OLD, 0o640, "SMSRUN32.EXE")
    assert world.vol.entry(("a", "b")).kind == "dir"
    assert world.vol.entry(()).kind == "dir"
    for parts in (("a", "nothing"), ("missing", "deeper", "x")):
        missing = world.vol.entry(parts)
        assert missing.kind is None and not missing.exists and missing.name == parts[-1]
    stamp = entry.stamp()
    put(world.top / "a" / "SMSRUN32.EXE", b"54321", mtime=OLD, mode=0o640)
    assert world.vol.entry(("a", "SMSRUN32.EXE")).stamp() != stamp, "a rewrite with the same size and date"


def test_listdir_lists_links_as_links_and_a_missing_folder_as_empty(world):
    listed = world.vol.listdir(("a",))
    assert [e.name for e in listed] == sorted(["D", "F", "G", "L2", "b", "plain.txt"])
    kinds = {e.name: e.kind for e in listed}
    assert kinds == {"D": "link", "F": "link", "G": "link", "L2": "link", "b": "dir", "plain.txt": "file"}
    assert world.vol.listdir(("a", "missing")) == []
    with pytest.raises(PathRefused) as info:
        world.vol.listdir(("a", "plain.txt"))
    assert world.vol.path(("a", "plain.txt")) in info.value.msg


def test_read_sha256_and_chunks_of_a_large_file(tmp_path):
    data = os.urandom(2 * sms_fs.CHUNK + 17)
    put(tmp_path / "v" / "big.bin", data)
    volume = LocalVolume(str(tmp_path / "v"))
    assert volume.read(("big.bin",)) == data
    assert volume.sha256(("big.bin",)) == hashlib.sha256(data).hexdigest()
    blocks = list(volume.chunks(("big.bin",)))
    assert b"".join(blocks) == data and len(blocks) == 3


def test_reading_a_missing_file(tmp_path):
    volume = LocalVolume(str(tmp_path))
    with pytest.raises(SmsFileError) as info:
        volume.read(("SMS.INI",))
    assert str(tmp_path / "SMS.INI") in info.value.msg and info.value.facts.get("missing") is True
    assert not isinstance(info.value, PathRefused)
    assert volume.read_or_none(("SMS.INI",)) is None
    assert volume.read_or_none(("no", "folder", "SMS.INI")) is None
    with pytest.raises(SmsFileError) as info:
        volume.sha256(("no", "SMS.INI"))
    assert str(tmp_path / "no") in info.value.msg


def test_find_is_case_insensitive_and_refuses_twins(tmp_path):
    put(tmp_path / "v" / "BIN" / "SMSRUN32.EXE", b"x")
    volume = LocalVolume(str(tmp_path / "v"))
    assert volume.find(("BIN",), "smsrun32.exe") == "SMSRUN32.EXE"
    assert volume.find(("BIN",), "Smsrun32.Exe") == "SMSRUN32.EXE"
    assert volume.find((), "bin") == "BIN"
    assert volume.find(("BIN",), "smssrv32.exe") is None
    assert volume.find(("BIN",), "SMSRUN32") is None, "a prefix is not a match"
    assert volume.find(("missing",), "x") is None
    assert volume.resolve(("bin", "smsrun32.exe")) == ("BIN", "SMSRUN32.EXE")
    assert volume.resolve(("bin", "nothing.exe")) is None
    with pytest.raises(PathRefused):
        volume.resolve(("..", "x"))
    put(tmp_path / "v" / "BIN" / "Smsrun32.exe", b"y")
    before = snapshot(tmp_path / "v")
    with pytest.raises(SmsFileError) as info:
        volume.find(("BIN",), "SMSRUN32.exe")
    assert "SMSRUN32.EXE and Smsrun32.exe" in info.value.msg
    assert str(tmp_path / "v" / "BIN") in info.value.msg
    with pytest.raises(SmsFileError):
        volume.resolve(("BIN", "smsrun32.exe"))
    assert snapshot(tmp_path / "v") == before


# -- writing ---------------------------------------------------------------------------------------
def test_write_replaces_atomically_keeps_mode_and_sets_date(tmp_path):
    put(tmp_path / "v" / "f.exe", b"old", mode=0o640)
    os.link(str(tmp_path / "v" / "f.exe"), str(tmp_path / "old-link"))
    volume = LocalVolume(str(tmp_path / "v"))
    digest = volume.write(("f.exe",), iter([b"new ", b"content"]), mtime=OLD + 0.5)
    assert digest == hashlib.sha256(b"new content").hexdigest()
    st = os.stat(str(tmp_path / "v" / "f.exe"))
    assert read(tmp_path / "v" / "f.exe") == b"new content"
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime_ns == (OLD * 10**9 + 5 * 10**8)
    # the old inode still holds the old bytes: a new file was renamed over, nothing written in place
    assert read(tmp_path / "old-link") == b"old"
    assert os.listdir(str(tmp_path / "v")) == ["f.exe"]


def test_write_of_a_new_file_gets_0644_whatever_the_umask(tmp_path):
    volume = LocalVolume(str(tmp_path))
    old = os.umask(0o077)
    try:
        volume.write_bytes(("new.dll",), b"x")
        volume.write_bytes(("exec.exe",), b"y", mode=0o755)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(str(tmp_path / "new.dll")).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(tmp_path / "exec.exe")).st_mode) == 0o755
    assert read(tmp_path / "new.dll") == b"x"


def test_write_uses_an_exclusive_temp_named_after_its_writer_in_the_target_folder(tmp_path):
    put(tmp_path / "v" / "BIN" / "SMSRUN32.EXE", b"old")
    volume = LocalVolume(str(tmp_path / "v"))
    seen = {}

    def chunks():
        seen["temps"] = temps_in(tmp_path / "v" / "BIN")
        seen["stale"] = volume.stale_temps(("BIN",))
        for name in seen["temps"]:
            seen["mode"] = stat.S_IMODE(os.lstat(str(tmp_path / "v" / "BIN" / name)).st_mode)
        yield b"new"

    volume.write(("BIN", "SMSRUN32.EXE"), chunks())
    assert len(seen["temps"]) == 1
    match = TMP_NAME.match(seen["temps"][0])
    assert match and int(match.group(1)) == os.getpid() and match.group(3) == "SMSRUN32.EXE"
    assert seen["mode"] == 0o600, "the half-written file is not readable by others"
    assert seen["stale"] == [], "a live writer's temp file is not stale"
    assert temps_in(tmp_path / "v" / "BIN") == [] and read(tmp_path / "v" / "BIN" / "SMSRUN32.EXE") == b"new"


def test_write_never_reuses_an_existing_temp_name(tmp_path, monkeypatch):
    """The temp file is created exclusively: a name already there (a planted link) is skipped, not opened."""
    put(tmp_path / "outside", b"outside", mtime=OLD)
    top = tmp_path / "v"
    top.mkdir()
    planted = ".sms-tmp-%d-%s-f.exe" % (os.getpid(), "00" * 4)
    os.symlink(str(tmp_path / "outside"), str(top / planted))
    draws = iter([b"\0\0\0\0", b"\1\1\1\1"])
    real_urandom = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: next(draws) if n == 4 else real_urandom(n))
    LocalVolume(str(top)).write_bytes(("f.exe",), b"mine")
    assert read(tmp_path / "outside") == b"outside"
    assert os.readlink(str(top / planted)) == str(tmp_path / "outside")
    assert read(top / "f.exe") == b"mine"


class Boom(Exception):
    pass


def failing_chunks(exc):
    yield b"half of the "
    raise exc


@pytest.mark.parametrize("case", ["enospc", "other_exception", "expect_sha256", "replace_fails", "fsync_fails"])
def test_a_failed_write_leaves_the_target_untouched_and_no_temp(tmp_path, monkeypatch, case):
    put(tmp_path / "v" / "f.exe", b"old", mtime=OLD, mode=0o640)
    volume = LocalVolume(str(tmp_path / "v"))
    before = snapshot(tmp_path / "v")
    chunks, kwargs, expected = [b"new"], {}, SmsFileError
    if case == "enospc":
        chunks = failing_chunks(OSError(errno.ENOSPC, "No space left on device"))
    elif case == "other_exception":
        chunks, expected = failing_chunks(Boom("source went away")), Boom
    elif case == "expect_sha256":
        kwargs = {"expect_sha256": "0" * 64}
    elif case == "replace_fails":

        def replace(*args, **kw):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(os, "replace", replace)
    elif case == "fsync_fails":

        def fsync(fd):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(expected) as info:
        volume.write(("f.exe",), chunks, mtime=1, **kwargs)
    monkeypatch.undo()
    # the folder's own date moves (a temp file came and went); the target keeps bytes, mode, date and inode
    after = snapshot(tmp_path / "v")
    assert after["./f.exe"] == before["./f.exe"]
    assert os.listdir(str(tmp_path / "v")) == ["f.exe"]
    if case == "enospc":
        assert "no space left" in info.value.msg and str(tmp_path / "v" / "f.exe") in info.value.msg
    if case == "expect_sha256":
        assert "expected " + "0" * 64 in info.value.msg
        assert info.value.facts["found"] == hashlib.sha256(b"new").hexdigest()


def test_write_refuses_a_link_planted_as_target(world):
    before = world.state()
    with pytest.raises(PathRefused) as info:
        world.vol.write_bytes(("a", "F"), b"EVIL")
    assert world.vol.path(("a", "F")) in info.value.msg and "symbolic link" in info.value.msg
    assert world.state() == before
    assert temps_in(world.top / "a") == []


def test_write_does_not_follow_a_link_planted_while_it_writes(world):
    """Target swapped for a link mid-write: the rename replaces the link itself, the outside file is untouched."""
    put(world.top / "a" / "t.exe", b"old")
    target = world.vol.path(("a", "t.exe"))
    before = snapshot(world.outside)

    def chunks():
        os.unlink(target)
        os.symlink(str(world.outside / "f"), target)
        yield b"new"

    world.vol.write(("a", "t.exe"), chunks())
    assert snapshot(world.outside) == before
    assert not os.path.islink(target) and read(target) == b"new"


def test_write_stays_in_the_folder_it_opened_when_that_folder_is_swapped_for_a_link(world):
    """Folders are held by descriptor: a folder renamed away and replaced by a link mid-write is not followed."""
    before = snapshot(world.outside)

    def chunks():
        os.rename(world.vol.path(("a", "b")), world.vol.path(("a", "b-moved")))
        os.symlink(str(world.outside), world.vol.path(("a", "b")))
        yield b"new"

    world.vol.write(("a", "b", "f"), chunks())
    assert snapshot(world.outside) == before
    assert read(world.top / "a" / "b-moved" / "f") == b"new"


def test_makedirs_refuses_a_folder_swapped_for_a_link_right_after_it_was_made(world, monkeypatch):
    """The window between mkdir and open: the new folder replaced by a link is refused, named, not followed."""
    real_mkdir = os.mkdir

    def mkdir(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        if name == "new":
            os.rename(name, "new-real", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.symlink(str(world.outside), name, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)
    before = snapshot(world.outside)
    with pytest.raises(PathRefused) as info:
        world.vol.makedirs(("a", "new", "deeper"))
    assert world.vol.path(("a", "new")) in info.value.msg and "symbolic link" in info.value.msg
    assert snapshot(world.outside) == before


def test_write_into_a_missing_folder_names_it(tmp_path):
    volume = LocalVolume(str(tmp_path))
    with pytest.raises(SmsFileError) as info:
        volume.write_bytes(("missing", "f"), b"x")
    assert str(tmp_path / "missing") in info.value.msg and info.value.facts.get("missing") is True
    assert os.listdir(str(tmp_path)) == []


def test_write_of_a_long_valid_name(tmp_path):
    """A name the file system accepts can be written: the temp name must not push it past NAME_MAX."""
    name = "n" * 240 + ".exe"
    put(tmp_path / name, b"old")
    volume = LocalVolume(str(tmp_path))
    volume.write_bytes((name,), b"new")
    assert read(tmp_path / name) == b"new"
    assert temps_in(tmp_path) == []


def test_write_into_a_read_only_folder(request, tmp_path):
    put(tmp_path / "ro" / "f.exe", b"old")
    ro_bind(request, tmp_path / "ro")
    volume = LocalVolume(str(tmp_path))
    before = snapshot(tmp_path / "ro")
    with pytest.raises(SmsFileError) as info:
        volume.write_bytes(("ro", "f.exe"), b"new")
    assert "cannot write in" in info.value.msg and str(tmp_path / "ro" / "f.exe") in info.value.msg
    assert snapshot(tmp_path / "ro") == before
    assert volume.writable(("ro",)) is False and volume.writable(("ro", "f.exe")) is False
    assert volume.writable(()) is True


def test_copy_from_copies_bytes_and_date_and_checks_them(tmp_path, monkeypatch):
    put(tmp_path / "src" / "X86.bin" / "SMSRUN32.EXE", b"payload", mtime=OLD)
    put(tmp_path / "dst" / "BIN" / "Smsrun32.exe", b"old", mtime=1, mode=0o600)
    src, dst = LocalVolume(str(tmp_path / "src")), LocalVolume(str(tmp_path / "dst"))
    digest = dst.copy_from(src, ("X86.bin", "SMSRUN32.EXE"), ("BIN", "Smsrun32.exe"))
    target = tmp_path / "dst" / "BIN" / "Smsrun32.exe"
    assert digest == hashlib.sha256(b"payload").hexdigest() and read(target) == b"payload"
    assert os.stat(str(target)).st_mtime == OLD and stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    dst.copy_from(src, ("X86.bin", "SMSRUN32.EXE"), ("BIN", "dated.exe"), mtime=OLD + 7)
    assert os.stat(str(tmp_path / "dst" / "BIN" / "dated.exe")).st_mtime == OLD + 7
    before = snapshot(tmp_path / "dst", dir_dates=False)
    with pytest.raises(SmsFileError) as info:
        dst.copy_from(src, ("X86.bin", "SMSRUN32.EXE"), ("BIN", "Smsrun32.exe"), expect_sha256="1" * 64, mtime=5)
    assert "expected " + "1" * 64 in info.value.msg
    with pytest.raises(SmsFileError):
        dst.copy_from(src, ("X86.bin", "missing.exe"), ("BIN", "Smsrun32.exe"))
    assert snapshot(tmp_path / "dst", dir_dates=False) == before
    # a copy that reads back wrong (a failing disk) is reported, naming the file
    monkeypatch.setattr(dst, "sha256", lambda parts: "2" * 64)
    with pytest.raises(SmsFileError) as info:
        dst.copy_from(src, ("X86.bin", "SMSRUN32.EXE"), ("BIN", "other.exe"))
    assert (
        "reads back with SHA-256 " + "2" * 64 in info.value.msg
        and str(tmp_path / "dst" / "BIN" / "other.exe") in info.value.msg
    )


def test_rename_unlink_rmdir_set_mtime_create_exclusive(tmp_path):
    put(tmp_path / "v" / "a" / "x", b"x", mtime=OLD)
    put(tmp_path / "v" / "b" / "y", b"y")
    volume = LocalVolume(str(tmp_path / "v"))
    volume.rename(("a", "x"), ("b", "y"))
    assert read(tmp_path / "v" / "b" / "y") == b"x" and not os.path.exists(str(tmp_path / "v" / "a" / "x"))
    volume.set_mtime(("b", "y"), OLD + 3)
    assert os.stat(str(tmp_path / "v" / "b" / "y")).st_mtime == OLD + 3 and read(tmp_path / "v" / "b" / "y") == b"x"
    with pytest.raises(SmsFileError) as info:
        volume.rename(("a", "gone"), ("b", "z"))
    assert str(tmp_path / "v" / "b" / "z") in info.value.msg
    assert volume.create_exclusive(("a", "lock"), b"me") is True
    assert volume.create_exclusive(("a", "lock"), b"other") is False and read(tmp_path / "v" / "a" / "lock") == b"me"
    volume.unlink(("a", "lock"))
    volume.unlink(("a", "lock"))  # missing_ok
    with pytest.raises(SmsFileError) as info:
        volume.unlink(("a", "lock"), missing_ok=False)
    assert info.value.facts.get("missing") is True
    assert volume.rmdir(("b",)) is False and os.path.isdir(str(tmp_path / "v" / "b"))
    assert volume.rmdir(("a",)) is True and not os.path.exists(str(tmp_path / "v" / "a"))


# -- temp files of a killed writer ------------------------------------------------------------------
@pytest.fixture
def pids(request):
    done = subprocess.Popen(["true"])
    done.wait()
    live = subprocess.Popen(["sleep", "60"])

    def stop():
        live.kill()
        live.wait()

    request.addfinalizer(stop)
    return {"dead": done.pid, "live": live.pid, "me": os.getpid()}


def test_stale_temps_are_those_of_a_dead_writer(world, pids):
    folder = world.top / "a" / "b"
    stale = ".sms-tmp-%d-0123abcd-SMSRUN32.EXE" % pids["dead"]
    kept = {
        "live": ".sms-tmp-%d-0123abcd-SMSRUN32.EXE" % pids["live"],
        "me": ".sms-tmp-%d-89abcdef-SMSRUN32.EXE" % pids["me"],
        "not_hex": ".sms-tmp-%d-xyzxyzxy-SMSRUN32.EXE" % pids["dead"],
        "short": ".sms-tmp-%d-0123-SMSRUN32.EXE" % pids["dead"],
        "no_prefix": "sms-tmp-%d-0123abcd-SMSRUN32.EXE" % pids["dead"],
    }
    put(folder / stale, b"half")
    for name in kept.values():
        put(folder / name, b"keep")
    os.mkdir(str(folder / (".sms-tmp-%d-0123abcd-dir" % pids["dead"])))
    os.symlink(str(world.outside / "f"), str(folder / (".sms-tmp-%d-0123abcd-lnk" % pids["dead"])))
    os.mkfifo(str(folder / (".sms-tmp-%d-0123abcd-fifo" % pids["dead"])))
    assert world.vol.stale_temps(("a", "b")) == [stale]
    outside = snapshot(world.outside)
    removed = world.vol.clean_temps(("a", "b"))
    assert removed == [world.vol.path(("a", "b", stale))]
    assert not os.path.lexists(str(folder / stale))
    left = set(os.listdir(str(folder)))
    assert set(kept.values()) <= left
    assert {".sms-tmp-%d-0123abcd-%s" % (pids["dead"], n) for n in ("dir", "lnk", "fifo")} <= left
    assert snapshot(world.outside) == outside
    assert world.vol.stale_temps(("a", "b")) == [] and world.vol.clean_temps(("a", "b")) == []
    assert world.vol.stale_temps(("a", "missing")) == []


# -- a top that does not exist yet (a state folder) ----------------------------------------------------
def test_missing_top_reads_as_empty_and_makedirs_creates_it(tmp_path):
    volume = LocalVolume(str(tmp_path / "state" / "Q216552"))
    assert volume.entry(()).kind is None
    assert volume.entry(("journal.json",)).kind is None
    assert volume.entry(("backup", "BIN", "x")).kind is None
    assert volume.listdir(()) == [] and volume.stale_temps(()) == []
    assert volume.read_or_none(("journal.json",)) is None
    assert volume.existing(("backup", "BIN")) == ()
    with pytest.raises(SmsFileError) as info:
        volume.write_bytes(("journal.json",), b"{}")
    assert str(tmp_path / "state" / "Q216552") in info.value.msg
    assert not os.path.exists(str(tmp_path / "state"))
    created = volume.makedirs(("backup", "BIN"))
    assert created == [("backup",), ("backup", "BIN")]
    assert os.path.isdir(str(tmp_path / "state" / "Q216552" / "backup" / "BIN"))
    assert volume.makedirs(("backup", "BIN")) == []
    assert volume.entry(()).kind == "dir"


def test_missing_top_is_writable_when_its_nearest_parent_is(tmp_path, monkeypatch):
    asked = []
    real_access = os.access

    def access(path, mode, **kw):
        asked.append(path)
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    volume = LocalVolume(str(tmp_path / "state" / "deeper" / "Q216552"))
    assert volume.writable(()) is True
    assert asked == [str(tmp_path)]
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False)
    assert volume.writable(()) is False


def test_missing_top_on_a_read_only_mount(request, tmp_path):
    (tmp_path / "ro").mkdir()
    ro_bind(request, tmp_path / "ro")
    assert LocalVolume(str(tmp_path / "ro" / "state" / "Q216552")).writable(()) is False
    assert LocalVolume(str(tmp_path / "rw" / "state")).writable(()) is True
    with pytest.raises(SmsFileError) as info:
        LocalVolume(str(tmp_path / "ro" / "state")).makedirs(("backup",))
    assert "cannot write in %s" % (tmp_path / "ro") in info.value.msg
    assert os.listdir(str(tmp_path / "ro")) == []


def test_free_bytes_of_a_missing_top_is_its_nearest_parents(request, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.strip())
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(tiny)], check=False))
    missing = LocalVolume(str(tiny / "state" / "Q216552"))
    dev, free, block = missing.free_bytes(())
    assert dev == os.stat(str(tiny)).st_dev != os.stat(str(tmp_path)).st_dev
    assert 0 < free <= 64 * 1024 and block > 0
    # an existing top is measured through its own descriptor
    (tiny / "real").mkdir()
    assert LocalVolume(str(tiny)).free_bytes(("real",))[0] == dev
    assert not os.path.exists(str(tiny / "state"))


def test_describe_os_error_says_what_to_do():
    assert "no space left on the device holding /x" in describe_os_error(OSError(errno.ENOSPC, "full"), "/x")
    assert "no space left" in describe_os_error(OSError(errno.EDQUOT, "quota"), "/x")
    for code in (errno.EACCES, errno.EPERM, errno.EROFS):
        text = describe_os_error(OSError(code, "nope"), "/x")
        assert text.startswith("cannot write in /x") and "make it writable" in text
    assert describe_os_error(OSError(errno.EIO, "Input/output error"), "/x") == "cannot use /x: Input/output error"


# -- issue 23: hard links, the file that was read, stale temps everywhere --------------------------
def test_a_file_with_a_second_hard_link_is_refused_by_every_read(tmp_path):
    put(tmp_path / "v" / "BIN" / "f.exe", b"outside content", mode=0o600)
    os.link(str(tmp_path / "v" / "BIN" / "f.exe"), str(tmp_path / "outside.exe"))
    volume = LocalVolume(str(tmp_path / "v"))
    for read_it in (volume.read, volume.sha256, lambda parts: b"".join(volume.chunks(parts)), volume.read_stamped):
        with pytest.raises(sms_fs.PathRefused) as info:
            read_it(("BIN", "f.exe"))
        assert volume.path(("BIN", "f.exe")) in info.value.msg and "2 hard links" in info.value.msg
        assert info.value.facts["nlink"] == 2
    with pytest.raises(sms_fs.PathRefused):
        LocalVolume(str(tmp_path / "w")).copy_from(volume, ("BIN", "f.exe"), ("copy.exe",))
    assert not (tmp_path / "w").exists() or os.listdir(str(tmp_path / "w")) == []
    assert volume.read(("BIN", "f.exe"), links_ok=True) == b"outside content"  # the lock's reader only
    assert volume.entry(("BIN", "f.exe")).nlink == 2


def test_a_write_over_the_file_that_was_read_checks_it_is_still_that_file(tmp_path):
    put(tmp_path / "SMS.INI", b"[SMS]\r\nA=1\r\n")
    volume = LocalVolume(str(tmp_path))
    data, entry = volume.read_stamped(("SMS.INI",))
    volume.write_bytes(("SMS.INI",), b"[SMS]\r\nA=2\r\n", unchanged=sms_fs.identity(entry, data))
    assert read(tmp_path / "SMS.INI") == b"[SMS]\r\nA=2\r\n"
    data, entry = volume.read_stamped(("SMS.INI",))
    # another writer, same size and (restored) date: only the hash tells
    put(tmp_path / "SMS.INI", b"[SMS]\r\nA=3\r\n", mtime=entry.mtime_ns / 1e9)
    os.utime(str(tmp_path / "SMS.INI"), ns=(entry.mtime_ns, entry.mtime_ns))
    with pytest.raises(sms_fs.FileChanged) as info:
        volume.write_bytes(("SMS.INI",), b"[SMS]\r\nA=4\r\n", unchanged=sms_fs.identity(entry, data))
    assert volume.path(("SMS.INI",)) in info.value.msg and "another writer" in info.value.msg
    assert read(tmp_path / "SMS.INI") == b"[SMS]\r\nA=3\r\n"
    assert os.listdir(str(tmp_path)) == ["SMS.INI"], "the temporary file was left"


def test_stale_temps_finds_a_dead_writers_files_below_a_folder_without_entering_links(tmp_path):
    dead = ".sms-tmp-%d-0badc0de-" % (2**22 + 1)
    put(tmp_path / "v" / "state" / (dead + "journal.json"), b"half")
    put(tmp_path / "v" / "state" / "backup" / "BIN" / (dead + "Smsrun32.exe"), b"half")
    put(tmp_path / "v" / "BIN" / "sub" / (dead + "x"), b"not walked: BIN is not deep")
    put(tmp_path / "outside" / (dead + "y"), b"outside")
    os.symlink(str(tmp_path / "outside"), str(tmp_path / "v" / "state" / "link"))
    volume = LocalVolume(str(tmp_path / "v"))
    found = sms_fs.stale_temps([(volume, ("state",), True), (volume, ("BIN",), False), (volume, ("none",), True)])
    assert sorted(sms_fs.temp_paths(found)) == sorted(
        [volume.path(("state", dead + "journal.json")), volume.path(("state", "backup", "BIN", dead + "Smsrun32.exe"))]
    )
    sms_fs.clean_temps(found)
    assert sms_fs.stale_temps([(volume, ("state",), True)]) == []
    assert (tmp_path / "outside" / (dead + "y")).exists() and (tmp_path / "v" / "BIN" / "sub" / (dead + "x")).exists()


# -- one base for every volume kind ------------------------------------------------------------------
SHARED = (
    "walk",
    "find",
    "resolve",
    "read_or_none",
    "sha256",
    "existing",
    "stale_temps",
    "clean_temps",
    "write_bytes",
    "copy_from",
    "__repr__",
)


def test_local_and_smb_volumes_share_one_base_and_write_its_bodies_once():
    import ast
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_smb

    assert issubclass(sms_fs.LocalVolume, sms_fs.Volume) and issubclass(sms_smb.SmbVolume, sms_fs.Volume)
    for name in SHARED:
        assert name in vars(sms_fs.Volume), name
        assert name not in vars(sms_fs.LocalVolume) and name not in vars(sms_smb.SmbVolume), name
    # sms_smb uses sms_fs's public API only.
    with open(sms_smb.__file__) as handle:
        tree = ast.parse(handle.read())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("sms_fs")
        for alias in node.names
    ]
    assert imported and not [name for name in imported if name.startswith("_")], imported
    assert sms_smb.SmbVolume.reread_hint == "check the share" and sms_fs.LocalVolume.reread_hint == "check the disk"


def test_repr_names_the_kind(tmp_path):
    assert repr(LocalVolume(str(tmp_path))) == "LocalVolume(%r)" % str(tmp_path)


def test_a_copy_that_does_not_read_back_names_the_disk(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data")
    dst, src = LocalVolume(str(tmp_path / "dst")), LocalVolume(str(tmp_path / "src"))
    monkeypatch.setattr(LocalVolume, "sha256", lambda self, parts: "0" * 64)
    with pytest.raises(SmsFileError) as info:
        dst.copy_from(src, ("f",), ("f",))
    assert info.value.msg.endswith("expected %s; check the disk" % hashlib.sha256(b"data").hexdigest())


def test_the_smb_options_live_in_their_own_module_alone():
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_smb_args

    # one place: sms_fs offers no second copy, and no plugin imports them from it
    assert not hasattr(sms_fs, "SMB_ARGS") and not hasattr(sms_fs, "smb_settings")
    plugins = os.path.join(REPO, "plugins")
    for folder, _dirs, files in os.walk(plugins):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as handle:
                    text = handle.read()
                for names in re.findall(r"sms_fs import (\([^)]*\)|[^\n]*)", text):
                    assert not re.search(r"\b(SMB_ARGS|smb_settings)\b", names), name
    assert sms_smb_args.SMB_ARGS["smb_password"]["no_log"] is True
    settings = sms_smb_args.smb_settings(
        {"smb_username": "u", "smb_addresses": {"LOGON01": "10.0.0.2"}}, "\\\\logon01\\SMS_SHR"
    )
    assert settings == {
        "username": "u",
        "password": None,
        "port": 445,
        "encrypt": None,
        "connection_timeout": 15,
        "address": "10.0.0.2",
    }
    assert "address" not in sms_smb_args.smb_settings({"smb_addresses": {"x": "1"}}, "/local/path")


def test_temporary_names_and_writers_are_public(tmp_path):
    name = sms_fs.temp_name("SMSRUN32.EXE")
    match = sms_fs.TEMP_NAME.match(name)
    assert match and int(match.group(1)) == os.getpid() and sms_fs.pid_alive(os.getpid())
    assert not sms_fs.pid_alive(2**22 + 1)
