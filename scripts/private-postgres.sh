#!/usr/bin/env bash
# Usage: scripts/private-postgres.sh DIR
# Copies the system's PostgreSQL 15 (binaries, libraries, share files and installed extensions such
# as pgTAP) under DIR. PostgreSQL finds its files relative to its binaries, so builds installed there
# with `OBAN_PG_ROOT=DIR` (see scripts/lib.sh) never touch the system copy: a developer can test a
# branch in a second checkout while the first one's clusters keep their own oban_pro.so.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DIR=${1:?usage: scripts/private-postgres.sh DIR}
ensure_packages
mkdir -p "$DIR/usr/lib/postgresql" "$DIR/usr/share/postgresql"
cp -a /usr/lib/postgresql/15 "$DIR/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$DIR/usr/share/postgresql/"
# pg_config reports the headers relative to the binaries too: PGXS builds need them there.
[ -e "$DIR/usr/include" ] || ln -s /usr/include "$DIR/usr/include"
chmod 755 "$DIR"
echo "export OBAN_PG_ROOT=$DIR"
