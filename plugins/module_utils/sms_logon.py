# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logon tier's shared code: a logon server, what to expect on it, and its jobs.

Three modules do one job each on a logon server (the site server is one too):

- sms_copy_list_baseline: record (present) or forget (absent) the copy-list
  version seen before staging (`run_baseline`, `run_reset`);
- sms_logon_wait: wait until the hotfix files and the copy-list bump have
  arrived (`run_converged`);
- sms_logon_push: copy the staged files to the server directly (present) or
  undo that push byte for byte (absent) (`run_pushed`, `run_restored`).

The deprecated sms_replication module dispatches its old `state` to the same
functions. `run_job` is every module's body: it opens the server, runs one job,
and fails with the job's message and facts; every result carries `status`
(what the job did, one word) and `state` (the state it ran).

Validation happens once: `check_expectations` is the one check of an
expectation set (`expect`), run on the controller by the action plugins
(plugins/plugin_utils/_sms_logon_controller.py); the module trusts the typed
`expect` its argument spec gives it (EXPECT_SPEC). A manifest that only the
host has is validated where it is read (sms_manifest.load_manifest).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    JOURNAL_ROOM,
    BackupJournal,
    SmsFileError,
    check_free_space,
    check_new_folders,
    check_writable,
    iso_utc,
    read_json,
    write_json,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    PathRefused,
    normal_path,
    open_volume,
    plain_results,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import SMB_ARGS, smb_settings
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import copy_list_version
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    PLATFORM_DIRS,
    ManifestError,
    check_plain_name,
    load_manifest,
    payload_parts,
    payload_volume,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_replace import (
    Change,
    Replacement,
    ReplaceFailed,
    restore_change,
)

DEFAULT_COPY_LISTS = ["Cl_nt.txt", "Cl_win95.txt", "Cl_win.txt", "Cl_dos.txt", "Cl_os2.txt"]
# What to do about a server that has not converged: the one text the module and the action plugin use.
ADVICE = (
    "check that the Maintenance Manager runs on the site server (SMS Service Manager), "
    "trigger a pass, or use push mode (sms_replication_mode=push)"
)
BUMP_ADVICE = (
    "the hotfix files are here but the copy lists were never regenerated: give System.map a new "
    "timestamp on the site server (run the site tier again with -e sms_stage_bump=always), then wait "
    "again"
)
PUSH_JOURNAL = "push"
_KB = re.compile(r"^Q[0-9]{5,7}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReplicationError(Exception):
    """A logon-server job that cannot go on: `msg` names what, where and the next step."""

    def __init__(self, msg: str, **facts: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.facts = facts


Expected = Dict[str, List[Dict[str, str]]]
Result = Dict[str, Any]

# `expect` as the modules declare it: platform -> [{name, sha256}]. Typed by the
# argument spec; its content was checked once, on the controller (check_expectations).
EXPECT_SPEC = dict(
    type="dict",
    options={
        platform: dict(
            type="list",
            elements="dict",
            options=dict(name=dict(type="str", required=True), sha256=dict(type="str", required=True)),
        )
        for platform in sorted(PLATFORM_DIRS)
    },
)


def short(digest: Optional[str]) -> str:
    return "%s.." % digest[:12] if digest else "none"


# --- expectations --------------------------------------------------------


def check_expectations(expect: Any, platforms: Optional[List[str]] = None) -> Expected:
    """The one check of `expect` (platform -> [{name, sha256}]); return it normalised (lower-case keys, digests).

    Run on the controller by the action plugins, before anything reaches a host.
    """
    if not isinstance(expect, dict):
        raise ReplicationError(
            "expect must be a dict of platform -> list of {name, sha256}, not %s" % type(expect).__name__
        )
    result = {}
    for platform, files in expect.items():
        key = str(platform).lower()
        if key not in PLATFORM_DIRS:
            raise ReplicationError(
                "expect: platform %r is unknown; known platforms: %s" % (platform, ", ".join(sorted(PLATFORM_DIRS)))
            )
        if not isinstance(files, list) or not files:
            raise ReplicationError("expect: platform %s must list at least one {name, sha256}" % platform)
        seen = set()
        entries = []
        for index, entry in enumerate(files):
            where = "expect: platform %s, file #%d" % (platform, index + 1)
            if not isinstance(entry, dict):
                raise ReplicationError("%s must be a dict with name and sha256" % where)
            try:
                check_plain_name(entry.get("name"), where)
            except ManifestError as exc:
                raise ReplicationError(exc.msg)
            digest = str(entry.get("sha256", "")).lower()
            if not _SHA256.match(digest):
                raise ReplicationError("%s (%s): sha256 %r is not 64 hex digits" % (where, entry["name"], digest))
            if entry["name"].lower() in seen:
                raise ReplicationError("%s: %s listed twice (names are case-insensitive)" % (where, entry["name"]))
            seen.add(entry["name"].lower())
            entries.append({"name": entry["name"], "sha256": digest})
        result[key] = entries
    return filter_platforms(result, platforms, "the expected files")


def trusted_expectations(expect: Dict[str, Any], platforms: Optional[List[str]]) -> Expected:
    """`expect` as the argument spec typed it (platforms not given are None), already checked on the controller."""
    given = {p: [{"name": f["name"], "sha256": f["sha256"]} for f in files] for p, files in expect.items() if files}
    if not given:
        raise ReplicationError("expect names no file: give at least one platform with a list of {name, sha256}")
    return filter_platforms(given, platforms, "the expected files")


def filter_platforms(expected: Expected, platforms: Optional[List[str]], source: str) -> Expected:
    if not platforms:
        return expected
    wanted = [p.lower() for p in platforms]
    for name in wanted:
        if name not in PLATFORM_DIRS:
            raise ReplicationError(
                "platform %r is unknown; known platforms: %s" % (name, ", ".join(sorted(PLATFORM_DIRS)))
            )
        if name not in expected:
            raise ReplicationError(
                "%s does not define platform %r; it defines %s" % (source, name, ", ".join(sorted(expected)))
            )
    return {p: files for p, files in expected.items() if p in wanted}


def expectations_from_manifest(manifest: Dict[str, Any]) -> Expected:
    """The expected files of a validated manifest (on the controller or on the host)."""
    return {
        p: [{"name": f["name"], "sha256": f["sha256"]} for f in spec["files"]]
        for p, spec in manifest["platforms"].items()
    }


def expectation_key(expected: Expected) -> str:
    """First 12 hex digits of the SHA-256 of the sorted expected set."""
    items = sorted((p, f["name"].lower(), f["sha256"]) for p, files in expected.items() for f in files)
    return hashlib.sha256(json.dumps(items).encode("utf-8")).hexdigest()[:12]


# --- the server's state ------------------------------------------------------


class LogonServer:
    """A logon server's SMS root: Logon.srv, its platform folders and copy lists (no link followed)."""

    def __init__(self, sms_root: str, copy_lists: List[str], params: Optional[Dict[str, Any]] = None) -> None:
        sms_root = normal_path(sms_root)
        self.volume = open_volume(
            sms_root, label="the logon server's SMS root", smb=smb_settings(params or {}, sms_root)
        )
        self.copy_lists = copy_lists
        if self.volume.entry(()).kind != "dir":
            raise ReplicationError(
                "SMS root %s does not exist; check sms_drive_root / sms_root for this host" % sms_root, path=sms_root
            )
        found = self.volume.find((), "Logon.srv")
        if found is None or self.volume.entry((found,)).kind not in ("dir", "link"):
            raise ReplicationError(
                "%s has no Logon.srv folder: this host is not an SMS logon server, or sms_root is wrong" % sms_root,
                path=sms_root,
            )
        self.logon_parts = (found,)
        self.volume.listdir(self.logon_parts)  # a link is refused, named
        self.logon_srv = self.volume.path(self.logon_parts)
        self._hashes: Dict[Tuple[str, ...], Any] = {}
        self._lists: Dict[Tuple[str, ...], Any] = {}

    def rel(self, parts: Tuple[str, ...]) -> str:
        return "/".join(parts[len(self.logon_parts) :])

    def platform_dir(self, platform: str) -> Tuple[str, ...]:
        """Parts of the server's Logon.srv/<Platform>.bin; refuse when it is missing."""
        found = self.volume.find(self.logon_parts, PLATFORM_DIRS[platform])
        if found is None or self.volume.entry(self.logon_parts + (found,)).kind not in ("dir", "link"):
            raise ReplicationError(
                "%s has no %s folder: this logon server does not serve %s clients; "
                "leave %s out of the rollout's platforms (sms_rollout_platforms) or check the server"
                % (self.logon_srv, PLATFORM_DIRS[platform], platform, platform),
                path=self.volume.path(self.logon_parts + (PLATFORM_DIRS[platform],)),
            )
        parts = self.logon_parts + (found,)
        self.volume.listdir(parts)
        return parts

    def sha256(self, parts: Tuple[str, ...], entry: Any = None) -> Optional[str]:
        """SHA-256 of a file, kept while its inode, size and times are unchanged, so polling stays cheap."""
        entry = entry or self.volume.entry(parts)
        if entry.kind is None:
            return None
        if entry.kind != "file":
            self.volume.read(parts)  # a link is refused, named
            raise ReplicationError("%s is not a file" % self.volume.path(parts), path=self.volume.path(parts))
        stamp = entry.stamp()
        cached = self._hashes.get(parts)
        if cached and cached[0] == stamp:
            return cached[1]
        digest = self.volume.sha256(parts)
        self._hashes[parts] = (stamp, digest)
        return digest

    def files(self, expected: Expected, dirs: Dict[str, Tuple[str, ...]]) -> List[Dict[str, Any]]:
        status = []
        for platform in sorted(expected):
            folder = dirs[platform]
            listing = {entry.name.lower(): entry for entry in self.volume.listdir(folder)}
            for item in expected[platform]:
                entry = listing.get(item["name"].lower())
                parts = folder + ((entry.name if entry else item["name"]),)
                found = self.sha256(parts, entry) if entry else None
                status.append(
                    {
                        "platform": platform,
                        "name": item["name"],
                        "parts": parts,
                        "path": self.volume.path(parts),
                        "expected_sha256": item["sha256"],
                        "found_sha256": found,
                        "ok": found == item["sha256"],
                    }
                )
        return status

    def copy_list_versions(self) -> Dict[str, int]:
        """CopyListVersion per present copy list (on-disk name); at least one must exist."""
        versions = {}
        listing = {entry.name.lower(): entry for entry in self.volume.listdir(self.logon_parts)}
        for name in self.copy_lists:
            entry = listing.get(name.lower())
            if entry is None or entry.kind is None:
                continue
            parts = self.logon_parts + (entry.name,)
            if entry.kind != "file":
                self.volume.read(parts)  # a link is refused, named
                continue
            cached = self._lists.get(parts)
            if cached and cached[0] == entry.stamp():
                value = cached[1]
            else:
                value = copy_list_version(self.volume.read(parts))
                self._lists[parts] = (entry.stamp(), value)
            try:
                versions[entry.name] = int(str(value).strip())
            except (TypeError, ValueError):
                raise ReplicationError(
                    "copy list %s has no decimal CopyListVersion (found %r); "
                    "let the Maintenance Manager regenerate it (touch System.map on the site server)"
                    % (self.volume.path(parts), value),
                    path=self.volume.path(parts),
                )
        if not versions:
            raise ReplicationError(
                "%s holds none of the copy lists %s: this host is not an SMS logon server, or the copy_lists "
                "option is wrong" % (self.logon_srv, ", ".join(self.copy_lists)),
                path=self.logon_srv,
            )
        return versions


def public(files: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "parts"} for item in files]


def copy_list_status(versions: Dict[str, int], baseline: Optional[Dict[str, Any]], require_bump: bool) -> Result:
    current = min(versions.values())
    status: Result = {"baseline": None, "current": current, "required": False, "ok": None, "files": versions}
    if baseline is None:
        status["note"] = "no baseline was recorded before staging: the copy-list bump is unknown and not required"
    elif baseline.get("files_already_current"):
        status["baseline"] = baseline.get("copy_list_version")
        status["ok"] = True
        status["note"] = (
            "the files were already current when the baseline was recorded: no copy-list bump is waited for"
        )
    else:
        status["baseline"] = baseline.get("copy_list_version")
        status["ok"] = current > status["baseline"]
        status["required"] = bool(require_bump)
        status["note"] = (
            "every present copy list must carry a CopyListVersion greater than %d" % status["baseline"]
            if require_bump
            else "the copy-list bump is reported but not required"
        )
    return status


def describe_missing(files: List[Dict[str, Any]], copy_list: Result, baseline: Optional[Dict[str, Any]]) -> List[str]:
    before = (baseline or {}).get("files", {})
    missing = []
    for item in files:
        if item["ok"]:
            continue
        label = "%s/%s" % (PLATFORM_DIRS[item["platform"]], item["name"])
        if item["found_sha256"] is None:
            missing.append("%s is missing, expects %s" % (label, short(item["expected_sha256"])))
            continue
        old = ""
        if before.get("%s/%s" % (item["platform"], item["name"].lower())) == item["found_sha256"]:
            old = " (unchanged since the baseline)"
        missing.append(
            "%s has sha256 %s%s, expects %s" % (label, short(item["found_sha256"]), old, short(item["expected_sha256"]))
        )
    if copy_list["required"] and not copy_list["ok"]:
        missing.append(
            "copy lists carry CopyListVersion %s (%s), need > %s (seen before staging)"
            % (
                copy_list["current"],
                ", ".join("%s=%s" % kv for kv in sorted(copy_list["files"].items())),
                copy_list["baseline"],
            )
        )
    return missing


# --- states ------------------------------------------------------------------

JOBS = ("baseline", "wait", "push", "restore", "reset")


class Context:
    """One job's inputs on one server: the expectations, the KB and the hotfix's state folder."""

    def __init__(self, module: Any, job: str) -> None:
        p = module.params
        self.module = module
        self.params = p
        self.job = job
        self.label = p["server_name"] or p["sms_root"]
        self.manifest: Optional[Dict[str, Any]] = None
        self.expected: Optional[Expected] = None
        expect = p.get("expect")
        if p.get("manifest") and (job != "reset" or not (p.get("kb") or p.get("state_dir"))):
            try:
                self.manifest = load_manifest(
                    p["manifest"], platforms=None if expect else p.get("platforms"), check_payload=job == "push"
                )
            except ManifestError as exc:
                raise ReplicationError(exc.msg, path=exc.path, **exc.facts)
        if expect:
            self.expected = trusted_expectations(expect, p.get("platforms"))
        elif self.manifest:
            self.expected = expectations_from_manifest(self.manifest)
        kb = p.get("kb") or (self.manifest or {}).get("kb")
        if kb is not None and not _KB.match(kb):
            raise ReplicationError("kb %r is not a Knowledge Base number like Q216552" % kb)
        if p.get("state_dir"):
            path = normal_path(p["state_dir"])
            self.volume = open_volume(path, label="the hotfix's state folder", smb=smb_settings(p, path))
            self.state_parts: Tuple[str, ...] = ()
            self.kb = kb or path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        elif kb:
            self.kb = kb
            root_path = normal_path(p["sms_root"])
            root = open_volume(root_path, label="the logon server's SMS root", smb=smb_settings(p, root_path))
            hotfix = root.find((), "Hotfix") if root.entry(()).kind == "dir" else None
            kb_name = (root.find((hotfix,), kb) if hotfix and root.entry((hotfix,)).kind == "dir" else None) or kb
            self.volume, self.state_parts = root, ((hotfix or "Hotfix"), kb_name)
        else:
            raise ReplicationError("name the hotfix's state folder: give kb (or manifest, or state_dir) with expect")
        self.state_dir = self.volume.path(self.state_parts)

    def expected_files(self) -> Expected:
        """The expected files of a job that compares them (the modules require manifest or expect for it)."""
        if self.expected is None:
            raise ReplicationError("the %s job needs the expected files: give manifest or expect" % self.job)
        return self.expected

    def baseline_parts(self) -> Tuple[str, ...]:
        return self.state_parts + ("copylist-baseline-%s.json" % expectation_key(self.expected or {}),)

    def baseline_path(self) -> str:
        return self.volume.path(self.baseline_parts())


def run_baseline(ctx: Context, server: LogonServer) -> Result:
    started = time.monotonic()
    expected = ctx.expected_files()
    dirs = {p: server.platform_dir(p) for p in expected}
    versions = server.copy_list_versions()
    files = server.files(expected, dirs)
    parts = ctx.baseline_parts()
    path = ctx.volume.path(parts)
    existing = read_json(ctx.volume, parts)
    result = {"baseline_path": path, "files": public(files)}
    if existing is not None:
        result.update(
            changed=False,
            baseline=existing,
            recorded=False,
            status="kept",
            msg="logon server %s: baseline kept (CopyListVersion %s recorded %s)"
            % (ctx.label, existing.get("copy_list_version"), existing.get("recorded")),
        )
    else:
        record = {
            "kb": ctx.kb,
            "copy_list_version": max(versions.values()),
            "copy_lists": versions,
            "recorded": iso_utc(time.time()),
            "server": ctx.label,
            "files_already_current": all(item["ok"] for item in files),
            "files": {"%s/%s" % (i["platform"], i["name"].lower()): i["found_sha256"] for i in files},
            "expected": dict(sorted(expected.items())),
        }
        # Checked in check mode too, so the preflight refuses a server it could not record on.
        check_new_folders(ctx.volume, [ctx.state_parts])
        check_free_space([(ctx.volume, ctx.volume.existing(ctx.state_parts), JOURNAL_ROOM)])
        if not ctx.module.check_mode:
            ctx.volume.makedirs(ctx.state_parts)
            write_json(ctx.volume, parts, record)
        result.update(
            changed=True,
            baseline=record,
            recorded=not ctx.module.check_mode,
            status="would_record" if ctx.module.check_mode else "recorded",
            msg="logon server %s: %s CopyListVersion %d as the baseline"
            % (ctx.label, "would record" if ctx.module.check_mode else "recorded", record["copy_list_version"]),
        )
    result["copy_list"] = copy_list_status(versions, result["baseline"], True)
    result["converged"] = all(item["ok"] for item in files)
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def converged_message(server: str, elapsed: float) -> str:
    return "logon server %s: converged after %.1fs" % (server, elapsed)


def not_converged_message(server: str, elapsed: float, missing: List[str], advice: Optional[str]) -> str:
    """The message of a wait that ended without convergence (the module's, and the action plugin's timeout)."""
    return "logon server %s: not converged after %ds: %s; %s" % (
        server,
        int(round(elapsed)),
        "; ".join(missing),
        advice or ADVICE,
    )


def run_converged(ctx: Context, server: LogonServer) -> Result:
    p = ctx.params
    if p["timeout"] < 0:
        raise ReplicationError("timeout must be 0 (check once) or a number of seconds, not %d" % p["timeout"])
    if p["sleep"] <= 0:
        raise ReplicationError("sleep must be a positive number of seconds, not %s" % p["sleep"])
    timeout = 0 if ctx.module.check_mode else p["timeout"]
    started = time.monotonic()
    expected = ctx.expected_files()
    dirs = {platform: server.platform_dir(platform) for platform in expected}
    parts = ctx.baseline_parts()
    polls = 0
    baseline = None
    while True:
        polls += 1
        if baseline is None:
            baseline = read_json(ctx.volume, parts)
        files = server.files(expected, dirs)
        copy_list = copy_list_status(server.copy_list_versions(), baseline, p["require_copy_list_bump"])
        converged = all(item["ok"] for item in files) and (copy_list["ok"] or not copy_list["required"])
        elapsed = time.monotonic() - started
        if converged or elapsed >= timeout:
            break
        time.sleep(min(p["sleep"], max(timeout - elapsed, 0.01)))
    elapsed = round(time.monotonic() - started, 3)
    missing = describe_missing(files, copy_list, baseline)
    files_ok = all(item["ok"] for item in files)
    result = {
        "changed": False,
        "converged": converged,
        "elapsed": elapsed,
        "polls": polls,
        "files": public(files),
        "copy_list": copy_list,
        "missing": missing,
        "baseline_path": ctx.volume.path(parts),
    }
    if baseline is not None:
        result["baseline"] = baseline
    result["status"] = "converged" if converged else "lagging"
    if converged:
        result["msg"] = converged_message(ctx.label, elapsed)
    else:
        advice = BUMP_ADVICE if files_ok and copy_list["required"] and not copy_list["ok"] else ADVICE
        result["advice"] = advice
        result["msg"] = not_converged_message(ctx.label, elapsed, missing, advice)
        if timeout > 0 and p["fail_on_timeout"]:
            result["failed"] = True
    return result


def _describe(path: str, digest: Optional[str]) -> str:
    return "%s sha256=%s\n" % (path, digest or "(absent)")


def _status(changed: bool, verb: str, check_mode: bool) -> str:
    """`pushed` / `would_push` style words (`unchanged` when nothing was to do)."""
    if not changed:
        return "unchanged"
    done = {"push": "pushed", "restore": "restored", "remove": "removed", "clean": "cleaned"}
    return ("would_" + verb) if check_mode else done[verb]


def push_engine(
    ctx: Context, server: LogonServer, journal: BackupJournal, folders: List[Tuple[str, ...]], record: bool = True
) -> Replacement:
    """The replacement engine of a push or its undo: the platform folders it writes, and the state folder
    (backups included) for a dead run's temporary files."""
    return Replacement(
        server.volume,
        journal,
        record=record,
        temp_places=[(server.volume, folder, False) for folder in sorted(set(folders))]
        + [(ctx.volume, ctx.state_parts, True)],
    )


def run_pushed(ctx: Context, server: LogonServer) -> Result:
    started = time.monotonic()
    manifest = ctx.manifest or {}
    expected = ctx.expected or {}
    volume = server.volume
    payload = payload_volume(manifest)
    dirs = {p: server.platform_dir(p) for p in expected}
    changes = []
    for platform in sorted(expected):
        listing = {entry.name.lower(): entry for entry in volume.listdir(dirs[platform])}
        for entry in manifest["platforms"][platform]["files"]:
            found_entry = listing.get(entry["name"].lower())
            current = dirs[platform] + (found_entry.name,) if found_entry else None
            found = server.sha256(current, found_entry) if current else None
            if found != entry["sha256"]:
                changes.append(
                    Change(
                        group=PLATFORM_DIRS[platform],
                        name=entry["name"],
                        parts=current or dirs[platform] + (entry["name"],),
                        current=current,
                        before_sha256=found,
                        after_sha256=entry["sha256"],
                        source=payload,
                        source_parts=payload_parts(manifest, entry),
                        mtime=entry["mtime"],
                        size=entry["size"],
                        platform=platform,
                    )
                )
    diff = {"before": "", "after": ""}
    pushed = []
    for change in changes:
        pushed.append(server.rel(change.parts))
        diff["before"] += _describe(server.rel(change.parts), change.before_sha256)
        diff["after"] += _describe(server.rel(change.parts), change.after_sha256)
    journal = BackupJournal(ctx.volume, ctx.state_parts + (PUSH_JOURNAL,))
    engine = push_engine(ctx, server, journal, list(dirs.values()))
    if changes:
        try:
            engine.preflight(changes)
        except SmsFileError as exc:
            raise ReplicationError("%s. Nothing was changed." % exc.msg, path=exc.path, **exc.facts)
    temps = engine.stale_paths()
    if (changes or temps) and not ctx.module.check_mode:
        try:
            # Every original is backed up (and noted in the journal) before the first copy.
            engine.run(changes)
        except ReplaceFailed as exc:
            raise push_failed(ctx, exc)
    files = server.files(expected, dirs)
    converged = all(item["ok"] for item in files)
    if not converged and not ctx.module.check_mode:
        bad = [i["path"] for i in files if not i["ok"]]
        raise ReplicationError(
            "push to logon server %s did not verify: %s; check the disk and push again" % (ctx.label, ", ".join(bad)),
            files=public(files),
        )
    result = {
        "changed": bool(changes) or bool(temps),
        "pushed": pushed,
        "files": public(files),
        "converged": converged,
        "journal": journal.path,
        "copy_list_bumped": False,
        "copy_list_note": "copy lists are not bumped in push mode (editing them by hand is unsupported); "
        "clients will not notice the change by themselves",
        "elapsed": round(time.monotonic() - started, 3),
        "status": _status(True, "push", ctx.module.check_mode)
        if changes
        else _status(bool(temps), "clean", ctx.module.check_mode),
        "msg": "logon server %s: %s %d file(s)"
        % (ctx.label, "would push" if ctx.module.check_mode else "pushed", len(changes)),
    }
    if temps:
        result["stale_temporary_files"] = temps
    if ctx.module._diff:
        result["diff"] = diff
    return result


def push_failed(ctx: Context, exc: ReplaceFailed) -> ReplicationError:
    """A push failed half-way (the engine put back what it could): say so."""
    msg, facts = exc.msg, dict(exc.cause_facts)
    if exc.problems:
        msg += "; the push stopped part-way and what it had changed could not all be put back (%s)%s" % (
            "; ".join(exc.problems),
            exc.owed_note() or ": fix the cause, then undo it with state=absent (sms_logon_push) or push again",
        )
    elif exc.restored:
        msg += (
            "; the push stopped part-way, and the %d file(s) it had already changed were put back as they "
            "were (%s), so logon server %s is as before the push"
            % (len(exc.restored), ", ".join(exc.restored), ctx.label)
        )
    else:
        msg += "; nothing was changed"
    facts.update(exc.facts())
    return ReplicationError(msg, path=exc.path, **facts)


def restore_failed(ctx: Context, exc: ReplaceFailed) -> ReplicationError:
    """An undo failed half-way: the engine put the files it had changed back as the push left them."""
    msg = exc.msg
    if exc.problems:
        msg += "; the restore stopped part-way and what it had changed could not all be put back (%s)" % (
            "; ".join(exc.problems)
        )
    elif exc.restored:
        msg += (
            "; the restore stopped part-way, and the %d file(s) it had already changed were put back as the "
            "push left them (%s)" % (len(exc.restored), ", ".join(exc.restored))
        )
    msg += "; the push journal is kept: fix the cause and run the restore again"
    return ReplicationError(msg, path=exc.path, **exc.cause_facts)


def run_restored(ctx: Context, server: LogonServer) -> Result:
    started = time.monotonic()
    volume = server.volume
    journal = BackupJournal(ctx.volume, ctx.state_parts + (PUSH_JOURNAL,))
    result: Result = {"changed": False, "restored": [], "journal": journal.path, "status": "unchanged"}
    if not journal.exists():
        result.update(
            elapsed=round(time.monotonic() - started, 3),
            msg="logon server %s: nothing was pushed (no %s)" % (ctx.label, journal.path),
        )
        return result
    wanted = None
    if ctx.params["platforms"]:
        wanted = []
        for platform in ctx.params["platforms"]:
            if platform.lower() not in PLATFORM_DIRS:
                raise ReplicationError(
                    "platform %r is unknown; known platforms: %s" % (platform, ", ".join(sorted(PLATFORM_DIRS)))
                )
            wanted.append(PLATFORM_DIRS[platform.lower()].lower())
    items, keys = [], []
    for key, entry in sorted(journal.entries().items()):
        group = key.rsplit("/", 1)[0]
        if wanted is not None and group.lower() not in wanted:
            continue
        keys.append(key)
        try:
            journal.verify(entry)
        except SmsFileError as exc:
            raise ReplicationError(exc.msg + "; nothing was restored", path=exc.path, **exc.facts)
        folder_name = volume.find(server.logon_parts, group)
        if folder_name is None:
            raise ReplicationError(
                "%s has no %s folder any more; nothing was restored" % (server.logon_srv, group),
                path=volume.path(server.logon_parts + (group,)),
            )
        items.append(restore_change(volume, journal, server.logon_parts + (folder_name,), group, entry, verify=False))
    changes = [item for item in items if item.changed]
    engine = push_engine(ctx, server, journal, [c.folder for c in changes], record=False)
    # A completed restore sets the push journal aside (retired), so a later push backs up what it finds then.
    if keys:
        result["retired"] = None
        try:
            engine.preflight(changes, journal=False)
            check_writable(journal.volume, [journal.parts])
        except SmsFileError as exc:
            raise ReplicationError("%s; nothing was restored" % exc.msg, path=exc.path)
    diff = {"before": "", "after": ""}
    for change in changes:
        relative = server.rel(change.parts)
        result["restored"].append(relative)
        diff["before"] += _describe(relative, change.before_sha256)
        diff["after"] += _describe(relative, change.after_sha256)
    # Temporary files a killed push or restore left: removed from every folder the restore writes.
    temps = engine.stale_paths()
    if temps:
        result["stale_temporary_files"] = temps
    if not ctx.module.check_mode:
        try:
            engine.run(changes)
        except ReplaceFailed as exc:
            raise restore_failed(ctx, exc)
        if keys:
            try:
                result["retired"] = engine.retire(keys)
            except SmsFileError as exc:
                raise ReplicationError(
                    "logon server %s: %d file(s) restored, but the push journal %s could not be set aside (%s); "
                    "fix the cause and run the restore again (it will only retire the journal)"
                    % (ctx.label, len(changes), journal.path, exc.msg),
                    path=exc.path,
                )
    msg = "logon server %s: %s %d file(s)" % (
        ctx.label,
        "would restore" if ctx.module.check_mode else "restored",
        len(changes),
    )
    if keys:
        msg += (
            "; the push journal would be set aside (retired)"
            if ctx.module.check_mode
            else "; the push journal was set aside in %s" % result["retired"]
        )
    result.update(
        changed=bool(changes) or bool(keys) or bool(temps),
        elapsed=round(time.monotonic() - started, 3),
        msg=msg,
        status=_status(True, "restore", ctx.module.check_mode)
        if changes or keys
        else _status(bool(temps), "clean", ctx.module.check_mode),
    )
    if ctx.module._diff:
        result["diff"] = diff
    return result


def run_reset(ctx: Context, server: Optional[LogonServer] = None) -> Result:
    started = time.monotonic()
    found = [
        entry.name
        for entry in ctx.volume.listdir(ctx.state_parts)
        if entry.name.startswith("copylist-baseline-") and entry.name.endswith(".json")
    ]
    if found:
        check_writable(ctx.volume, [ctx.state_parts])
    if not ctx.module.check_mode:
        for name in found:
            try:
                ctx.volume.unlink(ctx.state_parts + (name,))
            except SmsFileError as exc:
                raise ReplicationError(
                    "cannot remove the baseline %s (%s)" % (ctx.volume.path(ctx.state_parts + (name,)), exc.msg),
                    path=exc.path,
                )
    removed = [ctx.volume.path(ctx.state_parts + (name,)) for name in sorted(found)]
    return {
        "changed": bool(found),
        "removed": removed,
        "elapsed": round(time.monotonic() - started, 3),
        "status": _status(bool(found), "remove", ctx.module.check_mode),
        "msg": "logon server %s: %s %d baseline(s)"
        % (ctx.label, "would remove" if ctx.module.check_mode else "removed", len(found)),
    }


# --- a module's body -------------------------------------------------------------

HANDLERS: Dict[str, Callable[..., Result]] = {
    "baseline": run_baseline,
    "wait": run_converged,
    "push": run_pushed,
    "restore": run_restored,
    "reset": run_reset,
}

# The argument spec every logon module shares (SMB settings come from the `smb` doc fragment).
COMMON_ARGS: Dict[str, Any] = dict(
    sms_root=dict(type="str", required=True),
    manifest=dict(type="path"),
    kb=dict(type="str"),
    platforms=dict(type="list", elements="str"),
    copy_lists=dict(type="list", elements="str", default=list(DEFAULT_COPY_LISTS)),
    state_dir=dict(type="str"),
    server_name=dict(type="str"),
    **SMB_ARGS,
)


def run_job(module: Any, job: str, state: str, extra: Optional[Result] = None) -> None:
    """Run one job on the logon server and exit the module (`state` is returned as the state it ran)."""
    plain_results(module)
    started = time.monotonic()
    facts: Result = {"elapsed": 0.0, "state": state}
    try:
        ctx = Context(module, job)
        facts.update(kb=ctx.kb, state_dir=ctx.state_dir)
        server = (
            None
            if job == "reset"
            else LogonServer(module.params["sms_root"], module.params["copy_lists"], module.params)
        )
        result = HANDLERS[job](ctx, server)
    except (ReplicationError, SmsFileError) as exc:
        facts.update(exc.facts)
        facts.pop("missing", None)
        path = getattr(exc, "path", None)  # a ReplicationError's path is in its facts
        if path:
            facts.setdefault("path", path)
        refused = isinstance(exc, PathRefused)
        if refused:
            facts["refused"] = True
        # AnsibleModule would describe a `path` fact as a file (and add a `state` key)
        if "path" in facts:
            facts["failed_path"] = facts.pop("path")
        facts["elapsed"] = round(time.monotonic() - started, 3)
        facts["status"] = "refused" if refused else "failed"
        module.fail_json(msg=exc.msg, **facts)
    result.update(kb=ctx.kb, state_dir=ctx.state_dir, state=state)
    result.update(extra or {})
    if ctx.manifest:
        result["manifest_path"] = ctx.manifest["path"]
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
