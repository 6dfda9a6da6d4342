#!/usr/bin/env bash
# Start / stop the backing services Attest's integration tests run against:
# PostgreSQL 15, Redis and moto's S3 server, all on 127.0.0.1, all state in DIR.
#
#   scripts/services.sh start DIR   # start all three, write DIR/env (export lines)
#   scripts/services.sh stop DIR    # stop whatever is running from DIR (idempotent)
#
# Ports (override with env; a busy port is swapped for a free one):
#   ATTEST_PG_PORT (54329), ATTEST_REDIS_PORT (63799), ATTEST_MOTO_PORT (59000)
# Other knobs: ATTEST_PG_BIN (PostgreSQL bin dir), ATTEST_SERVICES_TIMEOUT (s, 60).
#
# Exit codes: 0 ok, 1 a service failed to start (one-line reason on stderr),
# 2 usage, 3 a prerequisite (binary, .venv) is missing -- callers such as
# `./dev test` may treat 3 as "services not installed here" rather than a failure.
#
# No systemd here: everything is started by hand and stopped by PID, so that
# nothing outlives the test run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
TIMEOUT="${ATTEST_SERVICES_TIMEOUT:-60}"

die()     { echo "services: $*" >&2; exit 1; }
missing() { echo "services: $*" >&2; exit 3; }
log()     { echo "services: $*" >&2; }

# PostgreSQL binaries: Debian puts them under /usr/lib/postgresql/VERSION/bin
# (only wrappers are on PATH). Prefer 15, else the newest installed.
find_pg_bin() {
    if [[ -n "${ATTEST_PG_BIN:-}" ]]; then echo "$ATTEST_PG_BIN"; return; fi
    if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then echo /usr/lib/postgresql/15/bin; return; fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
    if command -v pg_config >/dev/null 2>&1; then pg_config --bindir; return; fi
    echo /usr/lib/postgresql/15/bin
}
PG_BIN="$(find_pg_bin)"

# As root, initdb refuses to run and the server must not run as root: run the
# PostgreSQL commands as the `postgres` user. As anyone else, run them directly.
IS_ROOT=0; [[ "$(id -u)" -eq 0 ]] && IS_ROOT=1
as_pg() {
    if (( IS_ROOT )); then
        # su takes one command string: quote every word so paths survive.
        local cmd; cmd="$(printf '%q ' "$@")"
        su postgres -s /bin/sh -c "$cmd"
    else
        "$@"
    fi
}

# Is PORT free on 127.0.0.1? Bind without SO_REUSEADDR: conservative on purpose.
port_free() {
    "$VENV_BIN/python" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}
# Let the kernel pick an unused port.
any_free_port() {
    "$VENV_BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# pick_port NAME PREFERRED -> sets PICKED (not printed: a $(...) subshell
# would lose CHOSEN_PORTS, which keeps the three services on distinct ports).
CHOSEN_PORTS=" "
pick_port() {
    local name="$1" port="$2" tries=0
    while ! port_free "$port" || [[ "$CHOSEN_PORTS" == *" $port "* ]]; do
        (( ++tries > 20 )) && die "no free port found for $name"
        local next; next="$(any_free_port)"
        log "$name: port $port is busy, using $next"
        port="$next"
    done
    CHOSEN_PORTS+="$port "
    PICKED="$port"
}

# Poll CMD... until it succeeds or TIMEOUT seconds pass.
wait_for() {
    local deadline=$(( SECONDS + TIMEOUT ))
    until "$@" >/dev/null 2>&1; do
        (( SECONDS >= deadline )) && return 1
        sleep 0.2
    done
}

# Send TERM to a PID we don't own as a child (so `wait` can't be used): poll
# until it's gone, then KILL if it overstays.
stop_pid() {  # stop_pid NAME PID [GRACE_SECONDS]
    local name="$1" pid="$2" grace="${3:-20}"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( SECONDS + grace ))
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            log "$name (pid $pid) ignored SIGTERM for ${grace}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
}

redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
    else
        "$VENV_BIN/python" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),1); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)' "$1"
    fi
}
moto_ready() {
    "$VENV_BIN/python" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2).read()' "http://127.0.0.1:$1/"
}

cmd_stop() {
    local dir="$1"
    [[ -d "$dir" ]] || return 0
    # PostgreSQL: pg_ctl knows the postmaster from the data dir's postmaster.pid.
    local data="$dir/pg/data"
    if [[ -f "$data/postmaster.pid" && -x "$PG_BIN/pg_ctl" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || log "postgres: pg_ctl stop failed (see $dir/pg/postgres.log)"
        # If pg_ctl could not stop it, don't leave it behind.
        if [[ -f "$data/postmaster.pid" ]]; then
            local ppid; ppid="$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)"
            [[ "$ppid" =~ ^[0-9]+$ ]] && stop_pid postgres "$ppid" 10
        fi
    fi
    # Redis daemonizes itself and writes its own pidfile.
    if [[ -f "$dir/redis.pid" ]]; then
        stop_pid redis "$(cat "$dir/redis.pid")" 10
        rm -f "$dir/redis.pid"
    fi
    # moto takes several seconds to exit after SIGTERM: wait for it to be gone.
    if [[ -f "$dir/moto.pid" ]]; then
        stop_pid moto "$(cat "$dir/moto.pid")" 20
        rm -f "$dir/moto.pid"
    fi
    return 0
}

cmd_start() {
    local dir="$1"
    # --- prerequisites: checked before anything is started (exit 3) ---
    [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] \
        || missing "PostgreSQL not found (no $PG_BIN/initdb); install it: apt-get install postgresql"
    command -v redis-server >/dev/null 2>&1 \
        || missing "redis-server not found; install it: apt-get install redis-server"
    [[ -x "$VENV_BIN/moto_server" && -x "$VENV_BIN/python" ]] \
        || missing "moto_server not found in $VENV_BIN; install the dev extra (./dev test does)"
    if (( IS_ROOT )) && ! id postgres >/dev/null 2>&1; then
        missing "running as root but there is no 'postgres' user to run PostgreSQL as"
    fi

    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # Leftovers from an earlier run in the same DIR would hold ports and pids.
    cmd_stop "$dir"
    # If startup fails half-way, stop what did start: leave nothing running.
    # shellcheck disable=SC2064,SC2154  # expand $dir now: it is local to this function
    trap "rc=\$?; (( rc != 0 )) && cmd_stop $(printf %q "$dir"); exit \$rc" EXIT

    local pg_port redis_port moto_port
    pick_port postgres "${ATTEST_PG_PORT:-54329}"; pg_port="$PICKED"
    pick_port redis "${ATTEST_REDIS_PORT:-63799}"; redis_port="$PICKED"
    pick_port moto "${ATTEST_MOTO_PORT:-59000}"; moto_port="$PICKED"

    # --- PostgreSQL ---
    # The data, socket and log dirs must belong to `postgres`, and every parent
    # must be traversable by it (mktemp -d makes 0700 dirs, hence the chmod).
    local pg="$dir/pg"
    rm -rf "$pg"
    mkdir -p "$pg/data" "$pg/sock"
    chmod 755 "$dir" "$pg"
    : >"$pg/postgres.log"
    if (( IS_ROOT )); then
        chown -R postgres:postgres "$pg"
        su postgres -s /bin/sh -c "test -x $(printf %q "$pg/sock")" \
            || die "postgres: user 'postgres' cannot reach $pg (a parent dir is not world-traversable; use a DIR under /tmp)"
    fi
    log "postgres: initdb in $pg/data"
    # trust on the socket (setup below connects as the superuser), passwords on TCP.
    as_pg "$PG_BIN/initdb" -D "$pg/data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$pg/initdb.log" 2>&1 \
        || die "postgres: initdb failed (see $pg/initdb.log)"
    # Durability off: this is a throwaway test database, and it makes tests faster.
    as_pg "$PG_BIN/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t "$TIMEOUT" \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg/sock -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        start >/dev/null 2>&1 \
        || die "postgres: did not start on 127.0.0.1:$pg_port (see $pg/postgres.log)"
    wait_for "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" \
        || die "postgres: not answering on 127.0.0.1:$pg_port after ${TIMEOUT}s (see $pg/postgres.log)"
    # CREATEDB: pytest-django creates one test database per xdist worker.
    # pg_signal_backend: DROP DATABASE ... WITH (FORCE) (bench scripts) may end the
    # autovacuum worker a million-row load has woken in the database it drops.
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$pg/sock" -p "$pg_port" -U postgres -d postgres \
        -c "CREATE ROLE attest WITH LOGIN CREATEDB PASSWORD 'attest'" \
        -c "GRANT pg_signal_backend TO attest" \
        -c "CREATE DATABASE attest OWNER attest" >>"$pg/postgres.log" 2>&1 \
        || die "postgres: could not create role/database 'attest' (see $pg/postgres.log)"
    log "postgres: ready on 127.0.0.1:$pg_port"

    # --- Redis --- (no persistence: nothing to keep between runs)
    : >"$dir/redis.log"
    redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes \
        --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
        --save '' --appendonly no >/dev/null 2>>"$dir/redis.log" \
        || die "redis: redis-server failed to start (see $dir/redis.log)"
    wait_for redis_ping "$redis_port" \
        || die "redis: not answering PING on 127.0.0.1:$redis_port after ${TIMEOUT}s (see $dir/redis.log)"
    log "redis: ready on 127.0.0.1:$redis_port"

    # --- moto S3 server ---
    # Own log file and no stdin, so it holds no pipe of the caller's open
    # (otherwise `./dev test | tee` would hang until moto exits).
    nohup "$VENV_BIN/moto_server" -H 127.0.0.1 -p "$moto_port" \
        </dev/null >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    wait_for moto_ready "$moto_port" \
        || die "moto: S3 server not answering on http://127.0.0.1:$moto_port after ${TIMEOUT}s (see $dir/moto.log)"
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
        "$VENV_BIN/python" - "http://127.0.0.1:$moto_port" >>"$dir/moto.log" 2>&1 <<'EOF' \
        || die "moto: could not create bucket attest-test (see $dir/moto.log)"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket="attest-test")
EOF
    log "moto: S3 ready on http://127.0.0.1:$moto_port (bucket attest-test)"

    # --- the environment the settings read ---
    cat >"$dir/env" <<EOF
# Written by scripts/services.sh start $dir -- source it; stop with: scripts/services.sh stop $dir
export DATABASE_URL=postgres://attest:attest@127.0.0.1:$pg_port/attest
export CELERY_BROKER_URL=redis://127.0.0.1:$redis_port/0
export ATTEST_S3_BUCKET=attest-test
export ATTEST_S3_ENDPOINT_URL=http://127.0.0.1:$moto_port
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export ATTEST_S3_REGION=us-east-1
EOF
    trap - EXIT
    log "all services up; environment in $dir/env"
}

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
case "$1" in
    start) cmd_start "$2" ;;
    stop)  cmd_stop "$2" ;;
    *)     usage ;;
esac
