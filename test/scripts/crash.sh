#!/usr/bin/env bash
# The crash test's short form (issue 8, point 1), part of scripts/test.sh: 8 clients of mixed work,
# 2 immediate stops at random moments, the checks after each restart and after the final drain, on
# a cluster of its own. The long form: bash test/crash/run.sh --rounds 5 --seconds 20
# Usage: crash.sh WORKDIR
set -euo pipefail
exec bash "$(dirname "$0")/../crash/run.sh" --no-build --workdir "$1" --rounds "${CRASH_ROUNDS:-2}" \
    --seconds "${CRASH_SECONDS:-5}"
