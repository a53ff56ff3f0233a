#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the multi-worker tests, listening on loopback only.
#
#   eval "$(bash .ci/postgres.sh)"      # exports GPUPAIR_TEST_POSTGRES=postgresql://...
#
# Idempotent: installs PostgreSQL with apt-get if it is missing, creates the cluster once (initdb),
# starts it if it is not running (pg_ctl; no systemd needed), creates the user and the database if they
# do not exist. Only the `export ...` line goes to stdout; everything else goes to stderr.
# Settings (environment): GPUPAIR_PG_PORT (55432), GPUPAIR_PG_DIR (/tmp/gpupair-ci-postgres),
# GPUPAIR_PG_USER / GPUPAIR_PG_PASSWORD / GPUPAIR_PG_DB (gpupair / gpupair / gpupair).
set -euo pipefail

PORT="${GPUPAIR_PG_PORT:-55432}"
BASE="${GPUPAIR_PG_DIR:-/tmp/gpupair-ci-postgres}"
DB_USER="${GPUPAIR_PG_USER:-gpupair}"
DB_PASSWORD="${GPUPAIR_PG_PASSWORD:-gpupair}"
DB_NAME="${GPUPAIR_PG_DB:-gpupair}"
DATA="$BASE/data"
SOCKET="$BASE/socket"
LOG="$BASE/server.log"

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
    # Debian/Ubuntu keep the server binaries in /usr/lib/postgresql/<version>/bin (newest first);
    # elsewhere (e.g. a distribution that puts them on PATH) use whatever initdb is on PATH.
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

BIN="$(find_bindir || true)"
if [ -z "$BIN" ]; then
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and we are not root: install the 'postgresql' package"
    log "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
    BIN="$(find_bindir)" || die "apt-get installed postgresql, but initdb/pg_ctl were not found"
fi
log "using $BIN"

# The server refuses to run as root: as root, run it as the 'postgres' user (created by the package).
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres >&2
    fi
    as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
    as_pg() { (cd / && "$@"); }
fi

mkdir -p "$BASE"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$BASE"; fi
as_pg mkdir -p "$SOCKET"
chmod 700 "$BASE" 2>/dev/null || true

if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --no-locale >&2
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "already running (data directory $DATA)"
else
    log "starting on 127.0.0.1:$PORT (data directory $DATA, log $LOG)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$SOCKET" start >&2 \
        || { tail -n 20 "$LOG" >&2 || true; die "the server did not start (see $LOG)"; }
fi

psql_admin() {
    as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET" -p "$PORT" -U postgres -d postgres "$@"
}
psql_admin -tA -c "SELECT 1" >/dev/null || die "cannot connect to the server as postgres (socket $SOCKET, port $PORT)"

if [ "$(psql_admin -tA -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
    log "creating user $DB_USER"
    psql_admin -c "CREATE ROLE \"$DB_USER\" LOGIN PASSWORD '$DB_PASSWORD'" >&2
else
    psql_admin -c "ALTER ROLE \"$DB_USER\" LOGIN PASSWORD '$DB_PASSWORD'" >&2
fi
if [ "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    log "creating database $DB_NAME"
    psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\"" >&2
fi

URL="postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB_NAME"
# Check the URL the tests will use, over TCP with the password, before handing it out.
PGPASSWORD="$DB_PASSWORD" "$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" -tA \
    -c "SELECT 1" >/dev/null || die "cannot connect as $DB_USER over 127.0.0.1:$PORT"
log "ready: $URL (stop it with: ${BIN}/pg_ctl -D $DATA stop, as the postgres user)"
echo "export GPUPAIR_TEST_POSTGRES=$URL"
