# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SMB options a module takes and the connection settings they give (doc fragment sms.hotfix.smb).

Kept apart from sms_smb, which imports the SMB client library: a module
declares these options and reads a local path without loading it.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

# The SMB options every module that reaches a host's files takes (doc fragment sms.hotfix.smb).
SMB_ARGS: Dict[str, Dict[str, Any]] = dict(
    smb_username=dict(type="str"),
    smb_password=dict(type="str", no_log=True),
    smb_port=dict(type="int", default=445),
    smb_encrypt=dict(type="bool"),
    smb_addresses=dict(type="dict", default={}),
    smb_timeout=dict(type="int", default=15),
)


def is_unc(path: Any) -> bool:
    """Whether `path` names a share (`\\\\server\\share\\...` or `//server/share/...`)."""
    return isinstance(path, str) and (path.startswith("\\\\") or path.startswith("//"))


def smb_settings(params: Mapping[str, Any], path: Optional[str] = None) -> Dict[str, Any]:
    """Connection settings for open_volume from a module's parameters (the address for `path`'s server)."""
    settings = {
        "username": params.get("smb_username"),
        "password": params.get("smb_password"),
        "port": params.get("smb_port") or 445,
        "encrypt": params.get("smb_encrypt"),
        "connection_timeout": params.get("smb_timeout") or 15,
    }
    if path and is_unc(path):
        server = path.replace("/", "\\").lstrip("\\").split("\\", 1)[0]
        addresses = {str(k).lower(): v for k, v in (params.get("smb_addresses") or {}).items()}
        if server.lower() in addresses:
            settings["address"] = addresses[server.lower()]
    return settings
