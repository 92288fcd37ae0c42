# shellcheck shell=bash
# MySQL/MariaDB for the tests (sourced by scripts/test, after lib.sh).
# ensure_mysql exports FIELDSEAL_TEST_MYSQL_URL: an explicit URL, the local
# server on 127.0.0.1:3306, or a throwaway server under TMP_ROOT;
# mysql_summary says which. The caller must run stop_mysql on exit.

MYSQL_ORIGIN="" # where the URL came from, for mysql_summary
MY_PID="" MY_SOCK="" # throwaway server: pid and socket

# wait_until SECONDS PID CMD...: retry CMD until it succeeds (0), PID dies
# (2) or the time is up (1).
wait_until() {
    local deadline=$((SECONDS + $1)) pid=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || return 2
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# SQL over TCP as root without password, like the tests: my_sql PORT SQL
my_sql() {
    "$(find_bin mariadb mysql)" --no-defaults --connect-timeout=5 --protocol=tcp \
        -h127.0.0.1 -P"$1" -uroot -Nse "$2"
}

ensure_mysql() {
    if [ "${FIELDSEAL_THROWAWAY_DB:-}" = 1 ]; then
        [ -z "${FIELDSEAL_TEST_MYSQL_URL:-}" ] || note "FIELDSEAL_THROWAWAY_DB=1: ignoring FIELDSEAL_TEST_MYSQL_URL"
        start_throwaway_mysql
    elif [ -n "${FIELDSEAL_TEST_MYSQL_URL:-}" ]; then
        MYSQL_ORIGIN="from FIELDSEAL_TEST_MYSQL_URL"
    elif use_running_mysql; then
        export FIELDSEAL_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306
        MYSQL_ORIGIN="running server"
    else
        start_throwaway_mysql
    fi
}

# The server on 127.0.0.1:3306, if it answers and lets root in without a
# password. Turns on LOAD DATA LOCAL INFILE if it can (until its restart).
use_running_mysql() {
    "$(find_bin mariadb-admin mysqladmin)" --no-defaults --connect-timeout=5 \
        --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1 || return 1
    if ! my_sql 3306 'SELECT 1' >/dev/null 2>&1; then
        warn "MySQL on 127.0.0.1:3306 refuses root without password; starting a throwaway server"
        return 1
    fi
    if [ "$(my_sql 3306 'SELECT @@local_infile')" != 1 ]; then
        my_sql 3306 'SET GLOBAL local_infile = 1' >/dev/null 2>&1 ||
            warn "local_infile is off on 127.0.0.1:3306 and could not be turned on; LOAD DATA LOCAL INFILE will fail"
    fi
}

start_throwaway_mysql() {
    local mariadbd install_db admin dir port attempt rc user_opt=()
    if ! mariadbd=$(find_bin mariadbd mysqld); then
        is_root || die "no MariaDB server here: install mariadb-server, or set FIELDSEAL_TEST_MYSQL_URL"
        apt_install mariadb-server
        mariadbd=$(find_bin mariadbd mysqld) || die "mariadbd still missing after installing mariadb-server"
    fi
    install_db=$(find_bin mariadb-install-db mysql_install_db) || die "mariadb-install-db is missing"
    admin=$(find_bin mariadb-admin mysqladmin) || die "mariadb-admin is missing"
    is_root && user_opt=(--user=root) # mariadbd refuses root unless told
    make_tmp_root
    dir=$TMP_ROOT/mysql
    MY_SOCK=$dir/sock
    mkdir "$dir"
    # "normal" root authentication: root with an empty password, also as
    # root@127.0.0.1 over TCP (the unix_socket default would refuse TCP).
    "$install_db" --no-defaults "${user_opt[@]}" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
        >"$dir/install.log" 2>&1 || { tail -n 20 "$dir/install.log" >&2; die "mariadb-install-db failed"; }
    port=3306
    for attempt in 1 2 3; do # a retry in case another process grabs the port
        port=$(free_port $((port + 1)))
        # No durability needed (innodb flush 0): the data is thrown away.
        "$mariadbd" --no-defaults "${user_opt[@]}" --datadir="$dir/data" \
            --socket="$MY_SOCK" --pid-file="$dir/pid" --log-error="$dir/server.log" \
            --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
            --local-infile=1 --innodb-flush-log-at-trx-commit=0 \
            </dev/null >"$dir/server.out" 2>&1 &
        MY_PID=$!
        rc=0
        wait_until 60 "$MY_PID" "$admin" --no-defaults -S "$MY_SOCK" -uroot ping || rc=$?
        [ "$rc" -eq 0 ] && break
        [ "$rc" -eq 1 ] && { tail -n 20 "$dir/server.log" >&2; die "throwaway MariaDB did not answer within 60 s"; }
        if [ "$attempt" -lt 3 ] && grep -qi 'bind\|in use' "$dir/server.log" 2>/dev/null; then continue; fi
        tail -n 20 "$dir/server.log" "$dir/server.out" >&2
        die "throwaway MariaDB exited during startup"
    done
    # Belt and braces: make sure root@127.0.0.1 exists with all rights.
    "$(find_bin mariadb mysql)" --no-defaults -S "$MY_SOCK" -uroot -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    # Check the TCP login the tests will use reaches this server.
    [ "$(my_sql "$port" 'SELECT @@datadir')" = "$dir/data/" ] ||
        die "root@127.0.0.1:$port over TCP does not reach the throwaway MariaDB"
    [ "$(my_sql "$port" 'SELECT @@local_infile')" = 1 ] || my_sql "$port" 'SET GLOBAL local_infile = 1'
    export FIELDSEAL_TEST_MYSQL_URL=mysql://root@127.0.0.1:$port
    MYSQL_ORIGIN="throwaway $("$mariadbd" --version | awk '{print $3}')"
}

# The URL without password, and where it came from.
mysql_summary() { echo "$(redact_url "$FIELDSEAL_TEST_MYSQL_URL") ($MYSQL_ORIGIN)"; }

# Stop the throwaway server, if one was started.
stop_mysql() {
    local i
    [ -n "$MY_PID" ] && kill -0 "$MY_PID" 2>/dev/null || return 0
    "$(find_bin mariadb-admin mysqladmin)" --no-defaults -S "$MY_SOCK" -uroot \
        shutdown >/dev/null 2>&1 || kill "$MY_PID" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do kill -0 "$MY_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$MY_PID" 2>/dev/null || true
    wait "$MY_PID" 2>/dev/null || true
}
