# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that reaches a host's files over SMB.
    DOCUMENTATION = r"""
options:
  smb_username:
    description:
      - User for the SMB shares when a path is a share (C(\\server\share\...) or C(//server/share/...)).
      - With SMB the module runs on the controller (C(ansible_connection=local)) and reads and writes the
        host's files through the share, with the same rules as on a local path.
    type: str
  smb_password:
    description:
      - Password of O(smb_username). Never shown in results, messages or diffs (no_log).
    type: str
  smb_port:
    description: TCP port of the SMB servers.
    type: int
    default: 445
  smb_encrypt:
    description: Require SMB 3 encryption (V(true)), or let the server decide (unset).
    type: bool
  smb_addresses:
    description:
      - Addresses to connect to for server names (keys in lower case, for example C(logon01) mapped to
        C(10.1.2.3)), where a name in a share path does not resolve from the controller. Names not listed are
        connected to as given.
    type: dict
    default: {}
  smb_timeout:
    description: Seconds to wait for an SMB server to answer the connection.
    type: int
    default: 15
notes:
  - SMB 2 and 3 only (smbprotocol); an SMB1-only server (Windows NT 4.0) is refused with a message naming it.
  - Over SMB no process table can be read; the client tier reports C(SMSRUN32) as unknown and leaves
    the files to Client Setup.
"""
