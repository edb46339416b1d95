# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A controller-side file written whole or not at all: a temporary file, then a rename.

Shared by the report folder (sms_report_files) and the modules' bytecode
cache (sms_bytecode). The hosts' files have their own, durable, writer
(module_utils/sms_fs.py).
"""

from __future__ import annotations

import os
import tempfile


def write_bytes(folder, name, data, mode=0o644):
    """Write `folder/name` through a temporary file in `folder` and an atomic rename."""
    handle, temp = tempfile.mkstemp(prefix=".%s." % name, dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temp, mode)
        os.replace(temp, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
