# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_hotfix_stage module: the payload comes from the controller.

The task option `transfer` (auto, always, never; default auto) decides
whether the controller's manifest and the payload of the targeted platforms
are copied into the task's remote temporary folder (auto: when the
connection is not local) and staged from there; the folder is removed when
the task ends. Manifest and payload are validated on the controller first: a
bad payload fails the task before anything reaches the site server. A
rollback needs no payload, so only the manifest is sent.
"""

from __future__ import annotations


from ansible_collections.sms.hotfix.plugins.plugin_utils import sms_controller


class ActionModule(sms_controller.PayloadAction):

    def needs_payload(self, args):
        return args.get("state", "present") != "rolled_back"
