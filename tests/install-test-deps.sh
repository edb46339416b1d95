#!/usr/bin/env bash
# Debian packages the test suite's real peers need (Samba for the SMB tests,
# iproute2 for their network namespaces, ...), installed when missing.
# As root only: without root the tests that need them say so and skip.
# Usage: tests/install-test-deps.sh PACKAGE[:COMMAND] ...   (COMMAND: what shows it is there)
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "test-deps: not root: the tests that need $* will say so and not run"
    exit 0
fi
missing=()
for spec in "$@"; do
    package="${spec%%:*}"
    command="${spec#*:}"
    [ "$command" = "$spec" ] && command="$package"
    if ! command -v "$command" >/dev/null 2>&1; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "test-deps: installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null >/dev/null || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
