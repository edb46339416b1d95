# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install the awx.awx collection without Galaxy: from PyPI's `ansible` wheel.

    install_awx_collection.py --dest DIR [--cache DIR] [--spec awx/awx-collection.txt]

Downloads the wheel named in the spec file (pip checks its hash) into the
cache once, and puts the wheel's ansible_collections/awx/awx/ into
DIR/ansible_collections/awx/awx/: extracted into a temporary folder beside
it, then renamed into place, so an interrupted run leaves no half
collection. Does nothing when that version is there already.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "ansible_collections/awx/awx/"


def wheel_requirement(spec):
    with open(spec, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                return line
    raise SystemExit("%s names no wheel" % spec)


def download(spec, cache):
    requirement = wheel_requirement(spec)
    name, version = requirement.split()[0].split("==")
    wheels = glob.glob(os.path.join(cache, "%s-%s-*.whl" % (name, version)))
    if wheels:
        return wheels[0]
    os.makedirs(cache, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--require-hashes", "-r", spec, "-d", cache], check=True)
    wheels = glob.glob(os.path.join(cache, "%s-%s-*.whl" % (name, version)))
    if not wheels:
        raise SystemExit("pip downloaded no %s %s wheel into %s" % (name, version, cache))
    return wheels[0]


def installed_version(target):
    try:
        with open(os.path.join(target, "MANIFEST.json"), encoding="utf-8") as handle:
            return json.load(handle)["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        return None


def extract(wheel, dest):
    target = os.path.join(dest, "ansible_collections", "awx", "awx")
    with zipfile.ZipFile(wheel) as archive:
        manifest = json.loads(archive.read(PREFIX + "MANIFEST.json"))
        version = manifest["collection_info"]["version"]
        if installed_version(target) == version:
            return target, version, False
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        temp = tempfile.mkdtemp(prefix=".awx-", dir=parent)
        try:
            for member in archive.infolist():
                if not member.filename.startswith(PREFIX) or member.is_dir():
                    continue
                relative = member.filename[len(PREFIX):]
                if relative.startswith("/") or ".." in relative.split("/"):
                    raise SystemExit("refusing a path outside the collection in the wheel: %s" % member.filename)
                path = os.path.join(temp, relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with archive.open(member) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out)
            old = None
            if os.path.exists(target):
                old = tempfile.mkdtemp(prefix=".awx-old-", dir=parent)
                os.rename(target, os.path.join(old, "awx"))
            os.rename(temp, target)
            if old:
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    return target, version, True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dest", required=True, help="a collections path (gets ansible_collections/awx/awx)")
    parser.add_argument("--cache", default=os.path.join(HERE, "..", ".venv", "cache"),
                        help="where the wheel is kept between runs")
    parser.add_argument("--spec", default=os.path.join(HERE, "awx-collection.txt"))
    args = parser.parse_args(argv)
    wheel = download(args.spec, args.cache)
    target, version, changed = extract(wheel, args.dest)
    print("awx.awx %s %s %s" % (version, "installed in" if changed else "already in", target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
