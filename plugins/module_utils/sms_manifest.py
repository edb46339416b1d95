# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading and validating a hotfix manifest (see docs/MANIFEST.md).

Every check runs before anything is changed anywhere; the first problem found
is raised as ManifestError naming the manifest, the entry and what to do.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from typing import cast

from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import LocalVolume, SmsFileError


def parse_iso_utc(text):
    """Epoch seconds of an ISO-8601 date; a date without zone is UTC."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    stamp = datetime.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


# Client platform folders of SMS 1.2 (Mips.bin is historic but still valid).
PLATFORM_DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin", "mips": "Mips.bin"}

_KB = re.compile(r"^Q[0-9]{5,7}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A plain Windows 8.3 / long file name: no separators, no drive, no wildcards.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.$~!#%&'()@^`{}-]*$")


class ManifestError(Exception):
    def __init__(self, msg, path=None, **facts):
        super().__init__(msg)
        self.msg = msg
        self.path = path
        self.facts = facts


def platform_dir(platform):
    return PLATFORM_DIRS[platform.lower()]


def check_plain_name(name, where):
    """Refuse anything but a plain file name (no path, no drive, no `..`)."""
    if not isinstance(name, str) or not name:
        raise ManifestError("%s: the file name is missing or not a string" % where)
    if "/" in name or "\\" in name or ":" in name or name in (".", "..") or ".." in name:
        raise ManifestError(
            "%s: file name %r is not a plain name (it has a path separator, a drive or '..'); "
            "name the file only, e.g. Smsrun32.exe" % (where, name)
        )
    if not _PLAIN_NAME.match(name) or name.endswith((" ", ".")):
        raise ManifestError("%s: file name %r has characters a Windows file name cannot have" % (where, name))


def _require(entry, key, kind, where):
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ManifestError("%s: '%s' is missing or not a %s" % (where, key, getattr(kind, "__name__", kind)))
    return value


def read_manifest(path):
    """(bytes, parsed JSON) of the manifest file at `path`; ManifestError if unreadable."""
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ManifestError("manifest %s does not exist; pass the path of the hotfix's manifest.json" % path, path=path)
    except OSError as exc:
        raise ManifestError("manifest %s cannot be read: %s" % (path, exc.strerror or exc), path=path)
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("manifest %s is not valid JSON: %s" % (path, exc), path=path)
    return data, raw


def load_manifest(path, platforms=None, check_payload=True):
    """Load, validate and normalise a manifest.

    `platforms` limits the result (and the payload check) to those platforms.
    Returns a dict with absolute payload paths and epoch `mtime` per file.
    """
    path = os.path.abspath(path)
    _data, raw = read_manifest(path)
    return validate_manifest(
        raw,
        os.path.dirname(path),
        platforms=platforms,
        check_payload=check_payload,
        source="manifest %s" % path,
        path=path,
    )


def validate_manifest(raw, base_dir, platforms=None, check_payload=True, source=None, path=None):
    """Validate and normalise a manifest given as data (the parsed JSON).

    `base_dir` is the folder payload paths are relative to; with None (a
    manifest handed over as data, names and digests only) payload paths stay
    relative and `check_payload` must be False. `source` names where the
    data came from in messages (default: the manifest's `path`).
    """
    where = source or ("manifest %s" % path if path else "manifest data")
    if not isinstance(raw, dict):
        raise ManifestError("%s: the top level must be an object" % where, path=path)
    if base_dir is None and check_payload:
        raise ManifestError("%s: the payload cannot be checked without the manifest's folder" % where, path=path)

    kb = _require(raw, "kb", str, where)
    if not _KB.match(kb):
        raise ManifestError("%s: kb %r is not a Knowledge Base number like Q216552" % (where, kb), path=path)
    for key in ("product", "version"):
        _require(raw, key, str, where)
    declared = _require(raw, "platforms", dict, where)
    if not declared:
        raise ManifestError("%s: 'platforms' is empty; list at least one platform" % where, path=path)

    wanted = None
    if platforms:
        wanted = [p.lower() for p in platforms]
        for name in wanted:
            if name not in PLATFORM_DIRS:
                raise ManifestError(
                    "platform %r is unknown; known platforms: %s" % (name, ", ".join(sorted(PLATFORM_DIRS))), path=path
                )
            if name not in [p.lower() for p in declared]:
                raise ManifestError(
                    "%s does not define platform %r; it defines %s" % (where, name, ", ".join(sorted(declared))),
                    path=path,
                )

    base = os.path.abspath(base_dir) if base_dir is not None else None
    result = {
        "kb": kb,
        "title": raw.get("title", ""),
        "product": raw["product"],
        "version": raw["version"],
        "path": path,
        "base_dir": base,
        "platforms": {},
    }
    for platform, spec in declared.items():
        key = platform.lower() if isinstance(platform, str) else platform
        if key not in PLATFORM_DIRS:
            raise ManifestError(
                "%s: platform %r is unknown; known platforms: %s" % (where, platform, ", ".join(sorted(PLATFORM_DIRS))),
                path=path,
            )
        if wanted is not None and key not in wanted:
            continue
        pwhere = "%s, platform %s" % (where, platform)
        if not isinstance(spec, dict):
            raise ManifestError("%s: must be an object with 'files'" % pwhere, path=path)
        directory = spec.get("directory", PLATFORM_DIRS[key])
        if directory.lower() != PLATFORM_DIRS[key].lower():
            raise ManifestError(
                "%s: directory %r does not match the platform's folder %s" % (pwhere, directory, PLATFORM_DIRS[key]),
                path=path,
            )
        files = _require(spec, "files", list, pwhere)
        if not files:
            raise ManifestError("%s: 'files' is empty" % pwhere, path=path)
        seen = set()
        normalised = []
        for index, entry in enumerate(files):
            fwhere = "%s, file #%d" % (pwhere, index + 1)
            if not isinstance(entry, dict):
                raise ManifestError("%s: must be an object" % fwhere, path=path)
            name = entry.get("name")
            check_plain_name(name, fwhere)
            name = cast(str, name)  # check_plain_name refused anything else
            fwhere = "%s, file %s" % (pwhere, name)
            if name.lower() in seen:
                raise ManifestError("%s: listed twice (names are case-insensitive)" % fwhere, path=path)
            seen.add(name.lower())
            size = _require(entry, "size", int, fwhere)
            if size < 0:
                raise ManifestError("%s: size must not be negative" % fwhere, path=path)
            digest = _require(entry, "sha256", str, fwhere).lower()
            if not _SHA256.match(digest):
                raise ManifestError("%s: sha256 %r is not 64 hex digits" % (fwhere, digest), path=path)
            date = _require(entry, "date", str, fwhere)
            try:
                mtime = parse_iso_utc(date)
            except ValueError:
                raise ManifestError(
                    "%s: date %r is not ISO-8601 (e.g. 1999-01-14T23:21:00Z)" % (fwhere, date), path=path
                )
            payload = _require(entry, "payload", str, fwhere)
            payload_path = _payload_path(payload, base)
            if payload_path is None:
                raise ManifestError(
                    "%s: payload %r must be a path inside %s" % (fwhere, payload, base or "the manifest's folder"),
                    path=path,
                )
            normalised.append(
                {
                    "name": name,
                    "size": size,
                    "sha256": digest,
                    "date": date,
                    "mtime": mtime,
                    "payload": payload_path,
                    "service": bool(entry.get("service", False)),
                }
            )
        result["platforms"][key] = {"directory": PLATFORM_DIRS[key], "files": normalised}

    if check_payload:
        verify_payload(result)
    return result


def _payload_path(payload, base):
    """The payload's absolute path under `base` (relative when `base` is None); None if it escapes."""
    if os.path.isabs(payload) or not payload:
        return None
    if base is None:
        relative = os.path.normpath(payload)
        return None if relative == ".." or relative.startswith(".." + os.sep) or relative == "." else relative
    joined = os.path.normpath(os.path.join(base, payload))
    return joined if joined.startswith(base + os.sep) else None


def payload_volume(manifest):
    """The hotfix's folder as a volume: payload files are read there without following a link."""
    return LocalVolume(manifest["base_dir"], label="the hotfix folder %s" % manifest["base_dir"])


def payload_parts(manifest, entry):
    return tuple(os.path.relpath(entry["payload"], manifest["base_dir"]).split(os.sep))


def verify_payload(manifest):
    """Every payload file present (a regular file, not a link), with the manifest's size and SHA-256."""
    volume = payload_volume(manifest)
    for platform, spec in manifest["platforms"].items():
        for entry in spec["files"]:
            where = "payload of %s %s (%s)" % (platform, entry["name"], entry["payload"])
            parts = payload_parts(manifest, entry)
            try:
                info = volume.entry(parts)
                if info.kind is None:
                    raise ManifestError(
                        "%s is missing; put the vendor's file there (or run `make payload` for the lab)" % where,
                        path=entry["payload"],
                    )
                size = info.size
                if info.kind == "file" and size != entry["size"]:
                    raise ManifestError(
                        "%s is %d bytes, the manifest says %d; the payload is not this hotfix's file"
                        % (where, size, entry["size"]),
                        path=entry["payload"],
                        expected_size=entry["size"],
                        found_size=size,
                    )
                found = volume.sha256(parts)
            except SmsFileError as exc:
                raise ManifestError("%s: %s" % (where, exc.msg), path=entry["payload"])
            if found != entry["sha256"]:
                raise ManifestError(
                    "%s has SHA-256 %s, the manifest says %s; the payload is damaged or not this hotfix's file"
                    % (where, found, entry["sha256"]),
                    path=entry["payload"],
                    expected=entry["sha256"],
                    found=found,
                )


def summary(manifest):
    """The manifest as module output: no absolute payload paths needed."""
    return {
        "kb": manifest["kb"],
        "title": manifest["title"],
        "product": manifest["product"],
        "version": manifest["version"],
        "path": manifest["path"],
        "platforms": {
            platform: {
                "directory": spec["directory"],
                "files": [{k: f[k] for k in ("name", "size", "date", "sha256", "service")} for f in spec["files"]],
            }
            for platform, spec in manifest["platforms"].items()
        },
    }


def manifest_summary(manifest):
    """One line naming a validated manifest, for a result that echoes its arguments (invocation).

    Every client's result travels to the controller and through every callback: repeating each
    platform's digests there made half of it.
    """
    files = sum(len(spec["files"]) for spec in manifest["platforms"].values())
    return "%s (%d file(s) of %s, validated)" % (manifest["kb"], files, ", ".join(sorted(manifest["platforms"])))
