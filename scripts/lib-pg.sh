# shellcheck shell=bash
# PostgreSQL for the tests (sourced by scripts/test, after lib.sh).
# ensure_pg exports FIELDSEAL_TEST_PG_URL: an explicit URL, the local
# server on 127.0.0.1:5432, or a throwaway cluster under TMP_ROOT;
# pg_summary says which. The caller must run stop_pg on exit.

PG_ORIGIN="" # where the URL came from, for pg_summary
PG_CTL="" PG_DATA="" # throwaway cluster: its pg_ctl and data dir
# PostgreSQL refuses to run as root: as root, the throwaway cluster's
# files and processes belong to this account instead.
PG_OS_USER=postgres
id -u postgres >/dev/null 2>&1 || PG_OS_USER=nobody

# Run a command as the PostgreSQL account, from a directory it may read.
as_pg() { (cd "$TMP_ROOT" && if is_root; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi); }

ensure_pg() {
    if [ "${FIELDSEAL_THROWAWAY_DB:-}" = 1 ]; then
        [ -z "${FIELDSEAL_TEST_PG_URL:-}" ] || note "FIELDSEAL_THROWAWAY_DB=1: ignoring FIELDSEAL_TEST_PG_URL"
        start_throwaway_pg
    elif [ -n "${FIELDSEAL_TEST_PG_URL:-}" ]; then
        PG_ORIGIN="from FIELDSEAL_TEST_PG_URL"
    elif use_running_pg; then
        export FIELDSEAL_TEST_PG_URL=postgres://postgres@127.0.0.1:5432
        PG_ORIGIN="running server"
    else
        start_throwaway_pg
    fi
}

# SQL over TCP as postgres, never prompting for a password: pg_sql PORT SQL
pg_sql() {
    PGCONNECT_TIMEOUT=5 "$(find_bin psql)" -w -X -q -At -h 127.0.0.1 -p "$1" \
        -U postgres -d postgres -c "$2"
}

# The server on 127.0.0.1:5432, if it answers and lets postgres in.
use_running_pg() {
    local isready
    isready=$(find_bin pg_isready) || return 1
    "$isready" -q -h 127.0.0.1 -p 5432 || return 1
    pg_sql 5432 'SELECT 1' >/dev/null 2>&1 && return 0
    warn "PostgreSQL on 127.0.0.1:5432 refuses user postgres without password; starting a throwaway server"
    return 1
}

start_throwaway_pg() {
    local initdb dir port attempt
    if ! initdb=$(find_bin initdb); then
        is_root || die "no PostgreSQL server here: install postgresql, or set FIELDSEAL_TEST_PG_URL"
        apt_install postgresql
        initdb=$(find_bin initdb) || die "initdb still missing after installing postgresql"
    fi
    initdb=$(readlink -f "$initdb") # pg_ctl of the same version sits next to it
    PG_CTL=$(dirname "$initdb")/pg_ctl
    make_tmp_root
    dir=$TMP_ROOT/pg
    mkdir "$dir"
    is_root && chown "$PG_OS_USER" "$dir"
    as_pg "$initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
        >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
    PG_DATA=$dir/data
    port=5432
    for attempt in 1 2 3; do # a retry in case another process grabs the port
        port=$(free_port $((port + 1)))
        # No durability needed (fsync off): the data is thrown away.
        as_pg "$PG_CTL" -D "$PG_DATA" -l "$dir/server.log" -w -t 60 -o \
            "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null 2>&1 && break
        if [ "$attempt" -lt 3 ] && grep -q 'already in use' "$dir/server.log" 2>/dev/null; then continue; fi
        tail -n 20 "$dir/server.log" >&2 || true
        die "throwaway PostgreSQL failed to start (or not within 60 s)"
    done
    # Check the TCP login the tests will use reaches this server.
    [ "$(pg_sql "$port" 'SHOW data_directory')" = "$PG_DATA" ] ||
        die "postgres@127.0.0.1:$port over TCP does not reach the throwaway PostgreSQL"
    export FIELDSEAL_TEST_PG_URL=postgres://postgres@127.0.0.1:$port
    PG_ORIGIN="throwaway $("$initdb" --version | awk '{print $3}')"
}

# The URL without password, and where it came from.
pg_summary() { echo "$(redact_url "$FIELDSEAL_TEST_PG_URL") ($PG_ORIGIN)"; }

# Stop the throwaway cluster, if one was started.
stop_pg() {
    [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ] || return 0
    as_pg "$PG_CTL" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 ||
        kill -9 "$(head -n 1 "$PG_DATA/postmaster.pid")" 2>/dev/null || true
}
