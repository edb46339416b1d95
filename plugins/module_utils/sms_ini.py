# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A byte-preserving reader and writer for the INI files of SMS hosts.

`SMS.INI` and the copy lists use CRLF lines and hold sections and keys this
project does not know. Setting a key rewrites the value of that one line and
nothing else, so every other byte of the file survives a rewrite.
Bytes are decoded as latin-1, which maps each byte to one character and back.
Lines end at CR LF, LF or CR only: `str.splitlines` would also split at
0x85, 0x0B, 0x0C and 0x1C-0x1E, which are ordinary characters in these files.
"""

from __future__ import annotations

import re
from typing import cast

_SECTION = re.compile(r"^\s*\[([^\]]*)\]\s*$")
_KEY = re.compile(r"^(\s*)([^=;#\[\s][^=]*?)(\s*=\s*)(.*?)(\s*)$")
_LINE = re.compile(r"([^\r\n]*)(\r\n|\n|\r|\Z)")


def split_lines(text):
    """[body, newline] per line of `text`, split at CR LF, LF or CR only.

    Each line keeps its own ending ("" for a last line without one), so
    joining body + newline gives `text` back exactly.
    """
    lines = []
    position, end = 0, len(text)
    while position < end:
        # _LINE matches any rest of the text (each part may be empty)
        match = cast("re.Match[str]", _LINE.match(text, position))
        lines.append([match.group(1), match.group(2)])
        position = match.end()
    return lines


def _text(data):
    return data.decode("latin-1") if isinstance(data, bytes) else data


def copy_list_version(data):
    """The CopyListVersion of a copy list (bytes or text), or None.

    Copy lists are not strict INI files (their [Files] section lists bare
    file names), so they are scanned, not parsed: lines end at CR LF, LF or
    CR; blank lines, `;`/`#` comments and lines without `=` are ignored;
    `[name]` starts a section (name compared without case and surrounding
    blanks). A `CopyListVersion = value` line (key without case, blanks
    around key and value trimmed as str.strip does, so 0x85 and 0xA0 count
    as blanks there; an empty value does not count) in the
    `[Copy List]` section wins, the first one there; otherwise the first one
    of any other section (or before any section). The value is returned as
    text, not checked to be a number.
    """
    section, anywhere = None, None
    for body, _newline in split_lines(_text(data)):
        text = body.strip()
        if not text or text[0] in ";#":
            continue
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1].strip().lower()
            continue
        if "=" not in text:
            continue
        key, value = text.split("=", 1)
        value = value.strip()
        if key.strip().lower() != "copylistversion" or not value:
            continue
        if section == "copy list":
            return value
        if anywhere is None:
            anywhere = value
    return anywhere


def _utf16(data):
    """How `data` is UTF-16 encoded ('UTF-16 little-endian with a byte-order mark', ...), or None."""
    if data[:2] == b"\xff\xfe":
        return "UTF-16 little-endian with a byte-order mark"
    if data[:2] == b"\xfe\xff":
        return "UTF-16 big-endian with a byte-order mark"
    # Without a mark: plain ASCII text in UTF-16 has a NUL in every other byte.
    if len(data) >= 4 and len(data) % 2 == 0:
        if not data[1::2].strip(b"\x00") and data[0::2].strip(b"\x00"):
            return "UTF-16 little-endian (no byte-order mark)"
        if not data[0::2].strip(b"\x00") and data[1::2].strip(b"\x00"):
            return "UTF-16 big-endian (no byte-order mark)"
    return None


class IniError(Exception):
    def __init__(self, msg, line=None):
        super().__init__(msg)
        self.msg = msg
        self.line = line


class IniDocument:
    def __init__(self, lines):
        # each line: [text without newline, newline]
        self._lines = lines

    @classmethod
    def parse(cls, data, name="the file"):
        if isinstance(data, bytes):
            encoding = _utf16(data)
            if encoding:
                raise IniError(
                    "%s is saved as %s (as Notepad saves it when 'Unicode' is chosen); SMS reads its INI files as "
                    "ANSI text: open it in Notepad and save it again with Encoding: ANSI (or rerun Client Setup), "
                    "then run again" % (name, encoding)
                )
            if b"\x00" in data:
                raise IniError("%s holds NUL bytes; it is not an INI file" % name)
            text = data.decode("latin-1")
        else:
            text = data
        doc = cls(split_lines(text))
        doc._check(name)
        return doc

    def _check(self, name):
        in_section = False
        for number, (body, _newline) in enumerate(self._lines, 1):
            stripped = body.strip()
            if not stripped or stripped[0] in ";#":
                continue
            if _SECTION.match(body):
                in_section = True
                continue
            if _KEY.match(body):
                if not in_section:
                    raise IniError("%s line %d: key outside any [section]: %r" % (name, number, stripped), number)
                continue
            raise IniError("%s line %d: not a [section], key=value or ; comment: %r" % (name, number, stripped), number)

    @property
    def newline(self):
        for _body, newline in self._lines:
            if newline:
                return newline
        return "\r\n"

    def sections(self):
        names = []
        for body, _nl in self._lines:
            match = _SECTION.match(body)
            if match:
                names.append(match.group(1).strip())
        return names

    def _walk(self):
        """Yield (index, section, key_match) for key lines."""
        section = None
        for index, (body, _nl) in enumerate(self._lines):
            match = _SECTION.match(body)
            if match:
                section = match.group(1).strip().lower()
                continue
            stripped = body.strip()
            if not stripped or stripped[0] in ";#":
                continue
            key = _KEY.match(body)
            if key:
                yield index, section, key

    def get(self, section, key, default=None):
        wanted_section, wanted_key = section.lower(), key.lower()
        for _index, sec, match in self._walk():
            if sec == wanted_section and match.group(2).strip().lower() == wanted_key:
                return match.group(4)
        return default

    def find_key(self, key, default=None):
        """The value of `key` in whatever section holds it first."""
        wanted = key.lower()
        for _index, _sec, match in self._walk():
            if match.group(2).strip().lower() == wanted:
                return match.group(4)
        return default

    def set(self, section, key, value):
        """Set a value; returns True when the document changed."""
        wanted_section, wanted_key = section.lower(), key.lower()
        for index, sec, match in self._walk():
            if sec == wanted_section and match.group(2).strip().lower() == wanted_key:
                if match.group(4) == value:
                    return False
                self._lines[index][0] = "%s%s%s%s%s" % (
                    match.group(1),
                    match.group(2),
                    match.group(3),
                    value,
                    match.group(5),
                )
                return True
        line = ["%s=%s" % (key, value), self.newline]
        insert_at = self._section_end(wanted_section)
        if insert_at is None:
            if self._lines and not self._lines[-1][1]:
                self._lines[-1][1] = self.newline
            self._lines.append(["[%s]" % section, self.newline])
            self._lines.append(line)
        else:
            self._lines.insert(insert_at, line)
        return True

    def remove(self, section, key):
        """Remove the line of `key` in `section` (the one `get` reads).

        Only that line goes; every other byte stays. Returns True when the
        document changed (False when the key is not there).
        """
        wanted_section, wanted_key = section.lower(), key.lower()
        for index, sec, match in self._walk():
            if sec == wanted_section and match.group(2).strip().lower() == wanted_key:
                del self._lines[index]
                return True
        return False

    def _section_end(self, wanted_section):
        """Index just after the last key line of a section, or None."""
        section: str | None = None
        start: int | None = None
        last = 0  # read only once start is set
        for index, (body, _nl) in enumerate(self._lines):
            match = _SECTION.match(body)
            if match:
                section = match.group(1).strip().lower()
                if section == wanted_section and start is None:
                    start = last = index + 1
                continue
            if section == wanted_section and body.strip():
                last = index + 1
        if start is None:
            return None
        if self._lines[last - 1][1] == "":
            self._lines[last - 1][1] = self.newline
        return last

    def to_bytes(self):
        return "".join(body + newline for body, newline in self._lines).encode("latin-1")

    def to_text(self):
        return self.to_bytes().decode("latin-1")
