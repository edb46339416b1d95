# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every logon-tier module (sms_logon_wait, sms_copy_list_baseline, sms_logon_push).
    DOCUMENTATION = r"""
options:
  sms_root:
    description:
      - The logon server's SMS root directory (C(<sms_drive_root>/SMS)), or its share over SMB
        (C(\\LOGON01\SMS_SHRC)). It must hold C(Logon.srv).
    type: str
    required: true
  manifest:
    description:
      - Path of the hotfix's C(manifest.json). The expected files and the KB number come from it.
      - The action plugin of the same name reads a manifest that exists on the controller and validates
        it there; the logon servers then need no copy of it. A path only the server has is read and
        validated on the server.
    type: path
  kb:
    description:
      - Knowledge Base number (like V(Q216552)) naming the state folder. Defaults to the manifest's C(kb).
    type: str
  platforms:
    description: Only these platforms (V(x86), V(alpha), V(mips)). Default is every platform of the expectations.
    type: list
    elements: str
  copy_lists:
    description:
      - Copy lists to read in C(Logon.srv), found case-insensitively. The ones present are read, and at
        least one of them must exist.
    type: list
    elements: str
    default: [Cl_nt.txt, Cl_win95.txt, Cl_win.txt, Cl_dos.txt, Cl_os2.txt]
  state_dir:
    description: The hotfix's state folder on the server. Default is C(<sms_root>/Hotfix/<KB>).
    type: str
  server_name:
    description: Name of the server in messages, usually C(inventory_hostname). Default is O(sms_root).
    type: str
notes:
  - Nothing outside O(sms_root) (and O(state_dir)) is read or written and no symbolic link is followed; a
    link where the module reads or writes fails the server with a message naming it, and nothing changes.
  - Copy lists are never edited. Only the Maintenance Manager regenerates them, after the
    C(System.map) timestamp changes (Q166771).
"""

    # `expect`, for the modules that compare files with an expectation set.
    EXPECT = r"""
options:
  expect:
    description:
      - Expected files per platform, each a list of C({name, sha256}). Overrides the manifest's
        expectations, for example to wait for the original files during a rollback.
      - Checked once, on the controller, by the action plugin (plain names, 64 hex digits, no name twice);
        the module trusts what its argument spec types.
      - Without O(manifest), O(kb) or O(state_dir) must name the state folder.
    type: dict
    suboptions:
      x86:
        description: Files of the C(X86.bin) folder.
        type: list
        elements: dict
        suboptions: &expect_files
          name:
            description: File name (matched case-insensitively).
            type: str
            required: true
          sha256:
            description: SHA-256 the file must have (lower-case hex).
            type: str
            required: true
      alpha:
        description: Files of the C(Alpha.bin) folder.
        type: list
        elements: dict
        suboptions: *expect_files
      mips:
        description: Files of the C(Mips.bin) folder.
        type: list
        elements: dict
        suboptions: *expect_files
"""
