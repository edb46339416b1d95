# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one file-replacement engine: plan, preflight, clean, journal, copy, verify, undo.

Every tier replaces files the same way (the site's Client.src, a logon
server's push, a client's SMS folder) and puts originals back the same way.
A module describes each file it wants changed as a `Change` and hands the
list to a `Replacement`; the engine does the rest, through sms_fs volumes
and the sms_files journal:

    from ansible_collections.sms.hotfix.plugins.module_utils.sms_replace import (
        Change, Replacement, ReplaceFailed, find_current, restore_change)

    journal = BackupJournal(state_volume, state_parts)
    engine = Replacement(volume, journal,
                         temp_places=[(volume, folder, False), (state_volume, state_parts, True)])
    changes = [Change(group="X86.bin", name=entry["name"], parts=target, current=current,
                      before_sha256=found, after_sha256=entry["sha256"], source=payload,
                      source_parts=payload_parts(manifest, entry), mtime=entry["mtime"], size=entry["size"],
                      platform="x86")
               for ...]                          # 1. plan (only what differs, or filter on .changed)
    engine.preflight(changes)                    # 2. writable, free space, journal room (also in check mode)
    engine.stale_paths()                         #    what a dead run left (to report; removed by run(),
                                                 #    or first by engine.clean())
    if not module.check_mode:
        try:                                     # 3-6. clean temps, back up + journal, copy, verify, undo
            engine.run(changes, pending={"bump": now_stamp()}, then=lambda tx: ...)
        except ReplaceFailed as exc:             # everything put back; exc says how that went
            note = ("; could not all be put back (%s)%s" % ("; ".join(exc.problems), exc.owed_note())
                    if exc.problems else "; the %d file(s) changed were put back" % len(exc.restored))
            module.fail_json(msg=exc.msg + note, **exc.facts())   # restored, owed, backups_kept

See sms_hotfix_stage (both paths), sms_client_run and sms_client_rollback
(SMS.INI through `then`, the module's own error class in `errors=`).

The reverse path is the same engine with restore changes (`restore_change`
plans one from a journal entry: the backup is verified before anything is
touched) and `record=False`; once every file is back, `engine.retire(keys)`
sets the journal entries and their backups aside (`retired/<stamp>/`).

A `Change.action` says what happens to its file:
- `copy`: back up the current file once per hotfix (journal), then copy
  `source`/`source_parts` over `parts` (temp file + atomic rename), with
  `mtime`, checked against `after_sha256` and read back;
- `restore`: copy the backup of journal entry `entry` over `current` (or
  `parts`), verified against the recorded SHA-256, then rename it to `parts`
  (the original name) when the names differ;
- `remove`: unlink `current` (a file the hotfix added);
- `write`: write `data` over `parts` atomically and read it back;
- `backup`: only back the file up and journal it (the caller writes it
  itself in `then`, e.g. SMS.INI's keys through the transaction).
On any failure, everything this run changed is put back (files, backups,
journal entries, folders it made) and `ReplaceFailed` says how that went.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    JOURNAL_ROOM,
    BackupJournal,
    Transaction,
    check_free_space,
    check_new_folders,
    check_writable,
    iso_utc,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    SmsFileError,
    Volume,
    clean_temps,
    stale_temps,
    temp_paths,
)

Parts = Tuple[str, ...]
COPY, RESTORE, REMOVE, WRITE, BACKUP = "copy", "restore", "remove", "write", "backup"
ACTIONS = (COPY, RESTORE, REMOVE, WRITE, BACKUP)


@dataclass
class Change:
    """One file a run changes (or would): where, from what to what, and how.

    `group` and `name` key the journal (`<group>/<lower-case name>`: the
    platform folder, `BIN`, `INI`); `parts` is where the file ends up,
    `current` where it is now (None: not there). `changed` defaults to
    whether the two SHA-256 differ. `info` holds the caller's own facts
    (a service flag, an INI plan...), untouched by the engine.
    """

    group: str
    name: str
    parts: Parts
    current: Optional[Parts] = None
    before_sha256: Optional[str] = None
    after_sha256: Optional[str] = None
    action: str = COPY
    source: Optional[Volume] = None
    source_parts: Optional[Parts] = None
    mtime: Optional[float] = None
    size: Optional[int] = None
    data: Optional[bytes] = None
    entry: Optional[Dict[str, Any]] = None
    platform: Optional[str] = None
    backup: Optional[str] = None
    path: Optional[str] = None
    changed: Optional[bool] = None
    journaled: bool = False
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError("unknown action %r" % self.action)
        self.parts = tuple(self.parts)
        if self.current is not None:
            self.current = tuple(self.current)
        if self.changed is None:
            self.changed = self.before_sha256 != self.after_sha256

    @property
    def folder(self) -> Parts:
        return self.parts[:-1]

    @property
    def key(self) -> str:
        return BackupJournal.key(self.group, self.name)


class ReplaceFailed(Exception):
    """A run failed after it started changing files; what it put back is known.

    `cause`: the exception that stopped it; `restored`: paths put back (or
    removed); `problems`: what could not be put back; `owed`: journal items
    still owed (their backups are kept, `backups_kept`).
    """

    def __init__(self, cause: BaseException, restored: List[str], problems: List[str], tx: Transaction) -> None:
        self.cause = cause
        self.restored = restored
        self.problems = problems
        self.owed: List[Dict[str, Any]] = list(tx.owed)
        self.backups_kept: List[str] = tx.owed_backups()
        self._owed_note = tx.owed_note()
        if isinstance(cause, OSError):
            self.msg = "%s: %s" % (cause.filename or "a file", cause.strerror or cause)
            self.path: Optional[str] = cause.filename
            self.cause_facts: Dict[str, Any] = {}
        else:
            self.msg = getattr(cause, "msg", None) or str(cause)
            self.path = getattr(cause, "path", None)
            self.cause_facts = dict(getattr(cause, "facts", None) or {})
        super().__init__(self.msg)

    def owed_note(self) -> str:
        """'; the original of X is kept in ..., and the journal ... still names it: ...' or ''."""
        return self._owed_note

    def facts(self) -> Dict[str, Any]:
        """`restored`, and `owed`/`backups_kept` when a put-back failed and the journal keeps them."""
        out: Dict[str, Any] = {"restored": self.restored}
        if self.owed:
            out.update(owed=self.owed, backups_kept=self.backups_kept)
        return out


def find_current(volume: Volume, folder: Parts, name: str) -> Tuple[Optional[Parts], Optional[str]]:
    """(parts, SHA-256) of `name` in `folder` in any case, or (None, None).

    A link is refused (PathRefused naming it); anything else that is not a
    file raises SmsFileError naming it.
    """
    found = volume.find(folder, name)
    if found is None:
        return None, None
    parts = tuple(folder) + (found,)
    kind = volume.entry(parts).kind
    if kind != "file":
        if kind == "link":
            volume.read(parts)  # raises PathRefused naming the link and its target
        raise SmsFileError(
            "%s is not a file; remove it or rename it and run again" % volume.path(parts), path=volume.path(parts)
        )
    return parts, volume.sha256(parts)


def restore_change(
    volume: Volume,
    journal: BackupJournal,
    folder: Parts,
    group: str,
    entry: Dict[str, Any],
    check_date: bool = False,
    verify: bool = True,
    platform: Optional[str] = None,
) -> Change:
    """The reverse path's Change for journal `entry`: its original back in `folder` (or, with no original,
    the hotfix's file removed).

    The backup is verified first (`verify`; SmsFileError when missing or
    damaged). `check_date`: a file with the right bytes but another name
    or date is put back too (the site server's copy lists see the date).
    """
    current, before = find_current(volume, folder, entry["name"])
    if entry.get("existed"):
        parts = tuple(folder) + (entry["name"],)
        after: Optional[str] = entry["sha256"]
        changed = before != after
        if check_date and current is not None and not changed:
            changed = current[-1] != entry["name"] or int(volume.entry(current).mtime) != int(entry["mtime"])
        action = RESTORE
    else:
        parts = current or tuple(folder) + (entry["name"],)
        after, changed, action = None, current is not None, REMOVE
    if verify and (changed or check_date):
        journal.verify(entry)
    return Change(
        group=group,
        name=entry["name"],
        parts=parts,
        current=current,
        before_sha256=before,
        after_sha256=after,
        action=action,
        entry=entry,
        mtime=entry.get("mtime"),
        size=entry.get("size"),
        platform=platform,
        backup=journal.backup_path(entry),
        path=volume.path(parts),
        changed=changed,
        journaled=True,
    )


class Replacement:
    """One run's replacement of files on `volume`, with originals kept by `journal`.

    `temp_places`: (volume, folder parts, deep) of every folder the run
    writes into; the temporary files a dead run left there are found now
    (`stale_paths()`) and removed by `run()`. `record`: back up originals
    and journal them (False on the reverse path, which reads the journal).
    """

    def __init__(
        self,
        volume: Volume,
        journal: Optional[BackupJournal],
        temp_places: Iterable[Tuple[Volume, Parts, bool]] = (),
        record: bool = True,
        temps: Optional[List[Any]] = None,
    ) -> None:
        self.volume = volume
        self.journal = journal
        self.record = record
        # `temps`: what sms_fs.stale_temps already found (a caller that looked before it needed the engine).
        self.temps = list(temps) if temps is not None else stale_temps(list(temp_places))
        self._cleaned = False
        self.tx: Optional[Transaction] = None

    # -- planning ---------------------------------------------------------------------------------
    def stale_paths(self) -> List[str]:
        """Paths of the temporary files a dead run left (removed by `run()`)."""
        return temp_paths(self.temps)

    def new_backups(self, changes: Sequence[Change]) -> List[Change]:
        """The changes whose original this run backs up (no journal entry yet, a file there now)."""
        if not self.record or self.journal is None:
            return []
        return [
            c
            for c in changes
            if c.action in (COPY, WRITE, BACKUP)
            and c.current is not None
            and self.journal.entry(c.group, c.name) is None
        ]

    def preflight(
        self,
        changes: Sequence[Change],
        folders: Iterable[Parts] = (),
        files: Iterable[Parts] = (),
        journal: Optional[bool] = None,
        needs: Iterable[Tuple[Volume, Parts, int]] = (),
    ) -> None:
        """Before anything is touched: every folder and file to write is writable, and there is room.

        `folders`/`files`: more of `volume` to check (System.map, SMS.INI);
        `journal`: whether the journal is written (default: when there are
        changes and `record`); `needs`: more (volume, folder, bytes). Raises
        SmsFileError naming the path and the next step.
        """
        changes = list(changes)
        journal_written = bool(changes) and self.record if journal is None else journal
        check_writable(
            self.volume, [c.folder for c in changes] + [tuple(f) for f in folders], [tuple(f) for f in files]
        )
        state = self.journal
        backups = self.new_backups(changes)
        all_needs: List[Tuple[Volume, Parts, int]] = [
            (self.volume, c.folder, c.size or 0) for c in changes if c.action in (COPY, RESTORE, WRITE)
        ]
        if state is not None and (journal_written or backups):
            check_new_folders(state.volume, [state.parts + ("backup", c.group) for c in backups] + [state.parts])
            if state.exists():
                check_writable(state.volume, [state.parts], [state.file_parts])
            all_needs += [
                (
                    state.volume,
                    state.volume.existing(state.parts + ("backup", c.group)),
                    self.volume.entry(c.current).size or 0,
                )
                for c in backups
                if c.current
            ]
            all_needs.append((state.volume, state.volume.existing(state.parts), JOURNAL_ROOM))
        all_needs += list(needs)
        check_free_space(all_needs)

    # -- doing ------------------------------------------------------------------------------------
    def clean(self) -> List[str]:
        """Remove the temporary files a dead run left (once; `run()` calls it too); the paths removed.

        SmsFileError when one cannot be removed: nothing else was changed yet.
        """
        if self._cleaned:
            return []
        removed = clean_temps(self.temps)
        self._cleaned = True
        return removed

    def run(
        self,
        changes: Sequence[Change],
        pending: Optional[Dict[str, Any]] = None,
        then: Optional[Callable[[Transaction], None]] = None,
        errors: Tuple[Type[BaseException], ...] = (SmsFileError, OSError),
        undo_journal: Optional[bool] = None,
    ) -> Transaction:
        """Clean a dead run's temporary files, then make `changes`; on a failure put everything back.

        In order: the originals are backed up and journaled (durable before
        the first file is replaced), `pending` work is recorded in the
        journal (e.g. `{"bump": <date>}`, cleared by the caller once done),
        each change is made and verified, then `then(tx)` does the caller's
        own writes within the same transaction (a System.map bump, SMS.INI
        keys). `errors`: the exceptions that mean "undo" (the module's own
        error class too). `undo_journal`: whether a put-back also puts the
        journal back as it was (default: when this run writes it). Raises
        SmsFileError for the cleaning (nothing changed yet) and ReplaceFailed
        after that. Returns the transaction (its notes, for the caller).
        """
        self.clean()
        changes = list(changes)
        journal = self.journal
        writes_journal = journal is not None and (self.record or bool(pending))
        keep = writes_journal if undo_journal is None else undo_journal
        tx = Transaction(journal if keep else None)
        self.tx = tx
        try:
            if journal is not None and self.record:
                for change in changes:
                    if change.action not in (COPY, WRITE, BACKUP):
                        continue
                    if tx.journal is None:
                        raise SmsFileError(
                            "a run that records backups needs its journal in the transaction "
                            "(undo_journal=False goes with record=False)"
                        )
                    jentry = tx.record(change.group, change.name, self.volume, change.current, save=False)
                    change.backup = journal.backup_path(jentry)
            if journal is not None and pending:
                journal.data.setdefault("pending", {}).update(pending)
            if journal is not None and ((self.record and changes) or pending):
                if tx.journal is not None:
                    tx.makedirs(journal.volume, journal.parts)
                journal.save()
            for change in changes:
                self._apply(tx, change)
            if then is not None:
                then(tx)
        except errors as exc:
            restored, problems = tx.rollback()
            raise ReplaceFailed(exc, restored, problems, tx)
        return tx

    def _apply(self, tx: Transaction, change: Change) -> None:
        volume = self.volume
        if change.action == BACKUP:
            return
        if change.action == REMOVE:
            tx.remember(volume, change.current, change.parts)
            if change.current is not None:
                volume.unlink(change.current)
            return
        present = change.current is not None and volume.entry(change.current).kind == "file"
        tx.remember(volume, change.current if present else None, change.parts)
        if change.action == COPY:
            if change.source is None or change.source_parts is None:
                raise SmsFileError("no source for %s" % volume.path(change.parts), path=volume.path(change.parts))
            change.after_sha256 = volume.copy_from(
                change.source, change.source_parts, change.parts, mtime=change.mtime, expect_sha256=change.after_sha256
            )
        elif change.action == WRITE:
            data = change.data if change.data is not None else b""
            volume.write_bytes(change.parts, data, mtime=change.mtime)
            if volume.read(change.parts) != data:
                path = volume.path(change.parts)
                raise SmsFileError("%s reads back different from what was written; check the disk" % path, path=path)
        else:  # RESTORE
            if self.journal is None or change.entry is None:
                raise SmsFileError("no journal entry to restore %s from" % volume.path(change.parts))
            work = change.current or change.parts
            self.journal.restore(change.entry, volume, work)
            if work != change.parts:
                volume.rename(work, change.parts)

    # -- the reverse path's end --------------------------------------------------------------------
    def retire(self, keys: Optional[Iterable[str]] = None) -> Optional[str]:
        """Set the journal's entries `keys` (default: all) and their backups aside; the new folder or None."""
        if self.journal is None:
            return None
        if keys is None:
            return self.journal.retire()
        return self.journal.retire_entries(list(keys))


def set_pending_done(journal: BackupJournal, key: str) -> bool:
    """Clear pending work `key` once done (durably); whether the journal changed."""
    if not journal.pending.get(key):
        return False
    return journal.set_pending(**{key: None})


def now_stamp() -> str:
    """The date pending work is recorded with."""
    return iso_utc(time.time())


__all__ = [
    "Change",
    "Replacement",
    "ReplaceFailed",
    "find_current",
    "restore_change",
    "set_pending_done",
    "now_stamp",
    "COPY",
    "RESTORE",
    "REMOVE",
    "WRITE",
    "BACKUP",
]
