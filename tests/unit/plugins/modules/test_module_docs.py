"""Module docs as collections people trust write them (issue 26).

Every EXAMPLES task calls a module by its FQCN, the docs use O()/V()/RV()
markup (never I()), and every RETURN key says what it means. MODULES lists
the modules whose docs follow this so far; the others join it as their docs
are converted.
"""

import ast
import os
import re

import pytest
import yaml

from sms_testlib import REPO  # noqa: E402

MODULES = ["sms_hotfix_manifest", "sms_rollout_check", "sms_rollout_lock", "sms_wave_gate"]


def doc_blocks(name):
    with open(os.path.join(REPO, "plugins", "modules", name + ".py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    blocks = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                blocks[node.targets[0].id] = node.value.value
    return blocks


def tasks(examples):
    """Every task of EXAMPLES (also those of a play's pre_tasks/tasks/post_tasks)."""
    for item in yaml.safe_load(examples):
        if "hosts" in item:
            for key in ("pre_tasks", "tasks", "post_tasks"):
                yield from item.get(key) or []
        else:
            yield item


def return_keys(returns, prefix=""):
    for key, spec in (returns or {}).items():
        yield prefix + key, spec
        yield from return_keys(spec.get("contains"), prefix + key + ".")


@pytest.mark.parametrize("name", MODULES)
def test_examples_call_modules_by_fqcn(name):
    blocks = doc_blocks(name)
    seen = []
    for task in tasks(blocks["EXAMPLES"]):
        actions = [
            k
            for k in task
            if k
            not in (
                "name",
                "register",
                "when",
                "loop",
                "vars",
                "delegate_to",
                "run_once",
                "any_errors_fatal",
                "check_mode",
                "become",
                "tags",
            )
        ]
        assert len(actions) == 1, (name, task)
        assert re.match(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$", actions[0]), (name, actions[0])
        seen.append(actions[0])
    assert "sms.hotfix." + name in seen, (name, seen)


@pytest.mark.parametrize("name", MODULES)
def test_docs_use_the_current_markup(name):
    for block, text in doc_blocks(name).items():
        assert not re.search(r"\bI\(", text), (name, block)
    doc = yaml.safe_load(doc_blocks(name)["DOCUMENTATION"])
    options = set(doc["options"])
    # an option named in the prose is marked as one, O(name) or O(name=value), and exists
    for text in re.findall(r"\bO\(([^)=]+)", doc_blocks(name)["DOCUMENTATION"] + doc_blocks(name)["RETURN"]):
        assert text in options, (name, text)


@pytest.mark.parametrize("name", MODULES)
def test_every_return_key_says_what_it_means(name):
    returns = yaml.safe_load(doc_blocks(name)["RETURN"])
    keys = list(return_keys(returns))
    assert keys, name
    for key, spec in keys:
        description = spec.get("description")
        text = " ".join(description) if isinstance(description, list) else description
        assert text and len(text.split()) >= 3, (name, key)
        assert spec.get("type"), (name, key)
        if "." not in key:
            assert spec.get("returned"), (name, key)
    assert "msg" in returns or name == "sms_hotfix_manifest", name
