# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Return values of every module that replaces files through module_utils/sms_replace
    # (use it in RETURN: extends_documentation_fragment: [sms.hotfix.replace]).
    DOCUMENTATION = r"""
options: {}
"""

    RETURN = r"""
backups_kept:
  description:
    - On a failure whose put-back also failed, the backups of the files that could not be put back;
      the journal still names them, and the next run or a rollback finishes the work.
  returned: on such a failure
  type: list
  elements: str
stale_temporary_files:
  description: Temporary files of an interrupted earlier run that this run removed (or would, in check mode).
  returned: when there were any
  type: list
  elements: str
"""
