#!/usr/bin/env bash
# make sanitize-test: the unit tests and the whole database suite (pg_regress, isolation, pgTAP,
# test/scripts) against oban_pro built with AddressSanitizer + UndefinedBehaviorSanitizer.
#
# The sources are copied and built apart (the worktree's objects stay as they are) and installed into
# a private copy of PostgreSQL made for this run (no other oban_pro.so is replaced). PostgreSQL itself
# is not instrumented: every server the suites start gets the ASan runtime preloaded through pg_ctl's
# environment (OBAN_SERVER_ENV, see scripts/lib.sh), so the instrumented library loads and every
# malloc of the server goes through ASan's allocator. Leak detection is off (memory contexts are freed
# wholesale, which looks like leaks); the first report aborts the process and is written under
# $WORK/sanitizer. The run fails if any report appears there or in a server log. Then a canary (a
# deliberate heap overflow and an oversized shift, compiled only into sanitizer builds) must be
# reported, which shows that the check can fail. Usage: bash scripts/sanitize-test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_packages
started=$(date +%s)

WORK=$(make_workdir)   # the suites' scratch space
PRIV=$(mktemp -d /tmp/oban_pro_san.XXXXXX)  # the PostgreSQL copy and the build
chmod 755 "$PRIV"
trap 'stop_cluster; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK" "$PRIV"' EXIT
log "private PostgreSQL copy in $PRIV/pg, sources in $PRIV/build"
bash "$REPO/scripts/private-postgres.sh" "$PRIV/pg" >/dev/null
export OBAN_PG_ROOT=$PRIV/pg
source "$REPO/scripts/lib.sh"  # again: PG_BIN and the rest now point into the private copy
mkdir -p "$PRIV/build/test"
cp -r "$REPO/Makefile" "$REPO/oban_pro.control" "$REPO/src" "$REPO/sql" "$PRIV/build/"
cp -r "$REPO/test/unit" "$PRIV/build/test/"
SAN_MAKE=(make -C "$PRIV/build" -s PG_CONFIG="$PG_CONFIG" SANITIZE=address,undefined)
"${SAN_MAKE[@]}" clean >/dev/null

log "building oban_pro with -fsanitize=address,undefined"
"${SAN_MAKE[@]}" >/dev/null
"${SAN_MAKE[@]}" install >/dev/null
nm -D "$PG_BIN/../lib/oban_pro.so" | grep __asan_report >/dev/null || { echo "FAIL: oban_pro.so is not instrumented"; exit 1; }
LIBASAN=$(ldd "$PRIV/build/oban_pro.so" | awk '/libasan/ { print $3 }')
[ -f "$LIBASAN" ] || { echo "FAIL: no libasan in ldd of oban_pro.so"; exit 1; }

log "unit tests (pure C++), instrumented, leak detection on"
ASAN_OPTIONS=halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "${SAN_MAKE[@]}" unit

SAN=$WORK/sanitizer
mkdir -p "$SAN"
chown postgres: "$SAN"
# The runtime goes after the server's own shared libraries: preloaded first, it leaves glibc's
# locale lock held after setlocale() once p11-kit (a dependency of the server through GnuTLS) has
# run its constructor, and every postgres process (even `postgres -V`, which pg_ctl runs) hangs
# (seen with GCC 12's libasan on Debian 12). Hence verify_asan_link_order=0.
DEPS=$(ldd "$PG_BIN/postgres" | awk '$3 ~ /^\// { print $3 }' | grep -vE '/lib(c|m|pthread|dl|rt)\.so' | paste -sd:)
export OBAN_SERVER_ENV="LD_PRELOAD=$DEPS:$LIBASAN \
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:disable_coredump=1:verify_asan_link_order=0:log_path=$SAN/asan \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$SAN/ubsan"

start_cluster "$WORK/cluster"
postmaster=$(head -1 "$CLUSTER_DIR/data/postmaster.pid")
grep -q libasan "/proc/$postmaster/maps" || { echo "FAIL: the postmaster has not loaded libasan"; exit 1; }
grep -q "$PRIV/pg/.*/oban_pro.so" "/proc/$postmaster/maps" || { echo "FAIL: the postmaster has not loaded oban_pro.so"; exit 1; }

# reports: sanitizer reports written so far: ASan's files, and the servers' logs (stderr), where
# UBSan's reports land (with the ASan runtime preloaded it does not follow UBSAN_OPTIONS' log_path).
reports() {
    { cat "$SAN"/* 2>/dev/null; find "$WORK" -name '*.log' -type f -print0 | xargs -0r cat; } | grep -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' || true
}

suite_failed=0
if [ -z "${CANARIES_ONLY:-}" ]; then  # CANARIES_ONLY=1: just the build, the server and the canaries
    "$REPO/test/run.sh" "$WORK" || suite_failed=1
fi
found=$(reports | wc -l)
if [ "$found" -ne 0 ]; then
    log "sanitizer reports"
    cat "$SAN"/*
fi

log "canaries: a deliberate heap overflow and an oversized shift must be reported"
as_postgres psql -X -q -c "CREATE DATABASE sanitizer_canary"
as_postgres psql -X -q -d sanitizer_canary \
    -c "CREATE FUNCTION canary(kind text) RETURNS text AS 'oban_pro', 'oban_boundary_selftest' LANGUAGE c"
canaries=ok
for kind in asan_canary ubsan_canary; do
    before=$(reports | wc -l)
    # (after the first canary the server is still restarting: wait until it takes connections)
    for _ in $(seq 60); do as_postgres psql -X -q -d sanitizer_canary -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
    as_postgres psql -X -q -d sanitizer_canary -c "SELECT canary('$kind')" >/dev/null 2>&1 || true
    sleep 1
    after=$(reports | wc -l)
    want='heap-buffer-overflow'
    [ "$kind" = ubsan_canary ] && want='shift exponent 40 is too large'
    if [ "$after" -gt "$before" ] && reports | grep -q "$want"; then
        echo "$kind: reported ($want)"
    else
        echo "FAIL: $kind was not reported"
        canaries=missed
    fi
done
as_postgres "$PG_BIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT" -t 30 || { echo "FAIL: server did not come back"; canaries=missed; }
stop_cluster

log "sanitize-test: suite $([ $suite_failed -eq 0 ] && echo passed || echo FAILED), sanitizer reports: $found, canaries: $canaries, $(($(date +%s) - started)) s"
[ "$suite_failed" -eq 0 ] && [ "$found" -eq 0 ] && [ "$canaries" = ok ]
