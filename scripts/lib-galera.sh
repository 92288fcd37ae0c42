# shellcheck shell=bash
# A throwaway 3-node Galera cluster for the tests (sourced by scripts/test
# and scripts/galera, after lib.sh and lib-mysql.sh). ensure_galera uses
# FIELDSEAL_TEST_GALERA_URLS if set, else start_galera starts three MariaDB
# nodes on 127.0.0.1 under $TMP_ROOT/galera; galera_summary says which. The
# caller must run stop_galera on exit, before deleting TMP_ROOT.
#
# The contract with the tests (crates/testdb/src/galera.rs):
#   FIELDSEAL_TEST_GALERA_URLS  mysql://root@127.0.0.1:P1,...:P2,...:P3 -
#       node 1, 2, 3: root over TCP, no password, local_infile on.
#   FIELDSEAL_TEST_GALERA_DIR   set only for a cluster started here (so
#       tests may kill and restart nodes): holds node1, node2, node3, each
#       with
#         start       executable: if the node crashed (grastate.dat says
#                     seqno -1), recovers its position with mariadbd
#                     --wsrep-recover; then starts it in the background,
#                     joining the cluster, writes its pid, returns at once
#                     (wait for the node yourself). Extra arguments go to
#                     mariadbd. Fails if the node is still running.
#         pid         the pid of the node's mariadbd (kill -9 to crash it);
#                     as root, the nodes run as the mysql account
#         my.cnf      all its options: mariadbd --defaults-file=my.cnf
#         server.log  its error log; recover.log, the last recovery's
#         sock, data  its socket and datadir
#   The cluster is shared: a test that kills a node restarts it and waits
#   until it is Synced in a cluster of 3 again, and such tests must not run
#   concurrently with other tests using the cluster. Kill one node at a
#   time: with two down, the third loses quorum and the cluster is stuck.

GALERA_ORIGIN="" # where the URLs came from, for galera_summary
GALERA_DIR=""    # throwaway cluster: its root dir, with node1..node3
GALERA_PROVIDER=/usr/lib/galera/libgalera_smm.so
GALERA_TIMEOUT=180 # seconds a node may take to start and sync (SST)
# As root, the nodes run as this account, not as root: the joiner's rsync
# daemon of an SST started by root would switch to "nobody", which may not
# write the datadir.
GALERA_OS_USER=mysql
id -u mysql >/dev/null 2>&1 || GALERA_OS_USER=nobody

ensure_galera() {
    if [ "${FIELDSEAL_THROWAWAY_DB:-}" = 1 ]; then
        [ -z "${FIELDSEAL_TEST_GALERA_URLS:-}" ] || note "FIELDSEAL_THROWAWAY_DB=1: ignoring FIELDSEAL_TEST_GALERA_URLS"
        start_galera
    elif [ -n "${FIELDSEAL_TEST_GALERA_URLS:-}" ]; then
        GALERA_ORIGIN="from FIELDSEAL_TEST_GALERA_URLS"
        [ -n "${FIELDSEAL_TEST_GALERA_DIR:-}" ] ||
            GALERA_ORIGIN+="; no FIELDSEAL_TEST_GALERA_DIR, so the node kill/restart tests skip"
    else
        start_galera
    fi
}

# True when PID is a live process (not a zombie): the nodes are started
# detached, so their parent is init and not this shell.
galera_pid_alive() {
    local stat
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0 # no /proc: trust kill -0
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# True when any of the given pids is a live process.
galera_any_alive() {
    local pid
    for pid in "$@"; do galera_pid_alive "$pid" && return 0; done
    return 1
}

# galera_wait_until SECONDS PID CMD...: wait_until (lib-mysql.sh) for a
# node: its PID counts as dead once a zombie.
galera_wait_until() {
    local deadline=$((SECONDS + $1)) pid=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        galera_pid_alive "$pid" || return 2
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# The pid in node N's pid file (empty if none).
galera_pid() { cat "$GALERA_DIR/node$1/pid" 2>/dev/null || true; }

# SQL as root over node N's socket: galera_sql N SQL
galera_sql() {
    "$(find_bin mariadb mysql)" --no-defaults --connect-timeout=5 \
        -S "$GALERA_DIR/node$1/sock" -uroot -Nse "$2"
}

# Node N's wsrep state as one line: "ready size status state", e.g.
# "ON 3 Primary Synced".
galera_state() {
    local out
    out=$(galera_sql "$1" "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', \
        'wsrep_cluster_size', 'wsrep_cluster_status', 'wsrep_local_state_comment')") || return 1
    awk '{ v[$1] = $2 } END { print v["wsrep_ready"], v["wsrep_cluster_size"],
        v["wsrep_cluster_status"], v["wsrep_local_state_comment"] }' <<<"$out"
}

# True when node N is ready, Synced, in the primary component of SIZE nodes.
galera_synced() { [ "$(galera_state "$1")" = "ON $2 Primary Synced" ]; }

# Wait until node N is Synced in a cluster of SIZE, else die with its log.
galera_wait_synced() {
    local n=$1 size=$2 rc=0 log=$GALERA_DIR/node$1/server.log
    galera_wait_until "$GALERA_TIMEOUT" "$(galera_pid "$n")" galera_synced "$n" "$size" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    tail -n 30 "$log" "$GALERA_DIR/node$n/server.out" >&2 2>/dev/null || true
    if [ "$rc" -eq 2 ]; then
        die "Galera node $n exited during startup (log: $log)"
    fi
    die "Galera node $n not Synced in a cluster of $size within $GALERA_TIMEOUT s (state: $(galera_state "$n" 2>/dev/null || echo 'no answer'); log: $log)"
}

start_galera() {
    local mariadbd install_db i port peers="" dir user_line="" user_opt=() missing=()
    local -a sql_port group_port ist_port sst_port
    mariadbd=$(find_bin mariadbd mysqld) || missing+=(mariadb-server)
    [ -r "$GALERA_PROVIDER" ] || missing+=(galera-4)
    command -v rsync >/dev/null 2>&1 || missing+=(rsync)
    if [ "${#missing[@]}" -gt 0 ]; then
        is_root || die "a Galera cluster needs the Debian packages: ${missing[*]}. Install them, or set FIELDSEAL_TEST_GALERA_URLS"
        apt_install "${missing[@]}"
        mariadbd=$(find_bin mariadbd mysqld) || die "mariadbd still missing after installing mariadb-server"
        [ -r "$GALERA_PROVIDER" ] || die "$GALERA_PROVIDER still missing after installing galera-4"
    fi
    install_db=$(find_bin mariadb-install-db mysql_install_db) || die "mariadb-install-db is missing"
    if is_root; then
        user_opt=(--user="$GALERA_OS_USER")
        user_line="user = $GALERA_OS_USER"
    fi
    make_tmp_root
    GALERA_DIR=$TMP_ROOT/galera
    mkdir "$GALERA_DIR"

    # Four ports a node: SQL, group communication, IST and SST (rsync). A
    # random base below the ephemeral range, so that parallel runs rarely
    # collide; free_port skips the ones in use now.
    port=$((10000 + RANDOM % 20000))
    for i in 1 2 3; do
        sql_port[i]=$(free_port "$port")
        group_port[i]=$(free_port $((sql_port[i] + 1)))
        ist_port[i]=$(free_port $((group_port[i] + 1)))
        sst_port[i]=$(free_port $((ist_port[i] + 1)))
        port=$((sst_port[i] + 1))
        peers+=${peers:+,}127.0.0.1:${group_port[i]}
    done

    for i in 1 2 3; do
        dir=$GALERA_DIR/node$i
        mkdir -p "$dir/data"
        # Everything in one option file, read by mariadbd, its
        # --wsrep-recover run and the SST scripts alike (never /etc/mysql).
        # No durability needed (innodb flush 0): the data is thrown away.
        cat >"$dir/my.cnf" <<EOF
[mysqld]
$user_line
datadir = $dir/data
socket = $dir/sock
pid-file = $dir/pid
log-error = $dir/server.log
port = ${sql_port[i]}
bind-address = 127.0.0.1
skip-name-resolve
local-infile = 1
default-storage-engine = InnoDB
innodb-buffer-pool-size = 64M
innodb-flush-log-at-trx-commit = 0
innodb-autoinc-lock-mode = 2
binlog-format = ROW
wsrep-on = ON
wsrep-provider = $GALERA_PROVIDER
wsrep-cluster-name = fieldseal-test
wsrep-cluster-address = gcomm://$peers
wsrep-node-name = node$i
wsrep-node-address = 127.0.0.1:${group_port[i]}
wsrep-node-incoming-address = 127.0.0.1:${sql_port[i]}
wsrep-provider-options = "gmcast.listen_addr=tcp://127.0.0.1:${group_port[i]};ist.recv_addr=127.0.0.1:${ist_port[i]};gcache.size=32M"
wsrep-sst-method = rsync
wsrep-sst-receive-address = 127.0.0.1:${sst_port[i]}

[client]
socket = $dir/sock
user = root
EOF
        galera_write_start_script "$i" "$mariadbd"
    done
    if is_root; then chown -R "$GALERA_OS_USER:" "$GALERA_DIR"; fi

    # Node 1 gets the system tables and bootstraps the cluster; nodes 2
    # and 3 start empty and get everything from it by SST (rsync), one at
    # a time so that each has a donor to itself.
    dir=$GALERA_DIR/node1
    # "normal" root authentication: root with an empty password, also as
    # root@127.0.0.1 over TCP (the unix_socket default would refuse TCP).
    "$install_db" --no-defaults "${user_opt[@]}" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
        >"$dir/install.log" 2>&1 || { tail -n 20 "$dir/install.log" >&2; die "mariadb-install-db failed for Galera node 1"; }
    "$dir/start" --wsrep-new-cluster || die "could not start Galera node 1"
    galera_wait_synced 1 1
    # Belt and braces: root@127.0.0.1 with all rights, before the others
    # join so that the SST copies it.
    galera_sql 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    for i in 2 3; do
        "$GALERA_DIR/node$i/start" || die "could not start Galera node $i"
        galera_wait_synced "$i" "$i"
    done

    FIELDSEAL_TEST_GALERA_URLS=""
    for i in 1 2 3; do
        galera_synced "$i" 3 || galera_wait_synced "$i" 3
        # Check the TCP login the tests will use reaches this node.
        [ "$(my_sql "${sql_port[i]}" 'SELECT @@datadir')" = "$GALERA_DIR/node$i/data/" ] ||
            die "root@127.0.0.1:${sql_port[i]} over TCP does not reach Galera node $i"
        [ "$(my_sql "${sql_port[i]}" 'SELECT @@local_infile')" = 1 ] ||
            die "local_infile is off on Galera node $i"
        FIELDSEAL_TEST_GALERA_URLS+=${FIELDSEAL_TEST_GALERA_URLS:+,}mysql://root@127.0.0.1:${sql_port[i]}
    done
    export FIELDSEAL_TEST_GALERA_URLS FIELDSEAL_TEST_GALERA_DIR=$GALERA_DIR
    GALERA_ORIGIN="throwaway MariaDB $("$mariadbd" --version | awk '{print $3}'), Galera $(galera_sql 1 "SHOW STATUS LIKE 'wsrep_provider_version'" | awk '{print $2}'), in $GALERA_DIR"
}

# Write node N's start script (see the contract at the top): the same
# command for the first start, a restart after a clean stop, and a restart
# after kill -9.
galera_write_start_script() {
    local n=$1 dir=$GALERA_DIR/node$1 mariadbd=$2
    cat >"$dir/start" <<EOF
#!/usr/bin/env bash
# Start Galera node $n of a throwaway test cluster in the background (see
# scripts/lib-galera.sh). Extra arguments go to mariadbd.
set -euo pipefail
dir=$(printf %q "$dir")
mariadbd=$(printf %q "$mariadbd")
cd "\$dir"
pid=\$(cat pid 2>/dev/null || true)
if [ -n "\$pid" ] && kill -0 "\$pid" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/\$pid/stat" 2>/dev/null; then
    echo "galera node $n: still running (pid \$pid)" >&2
    exit 1
fi
# After a crash (seqno -1) the position is only in InnoDB: recover it, so
# that the node can rejoin by IST instead of a full SST.
position=()
if grep -q '^seqno: *-1' data/grastate.dat 2>/dev/null; then
    rm -f recover.log # mariadbd, maybe not as this account, makes it
    "\$mariadbd" --defaults-file="\$dir/my.cnf" --wsrep-recover \\
        --log-error="\$dir/recover.log" --pid-file="\$dir/recover.pid" \\
        </dev/null >recover.out 2>&1 || {
        tail -n 20 recover.log recover.out >&2
        echo "galera node $n: mariadbd --wsrep-recover failed" >&2
        exit 1
    }
    recovered=\$(sed -n 's/.*WSREP: Recovered position: *//p' recover.log | tail -n 1)
    if [ -n "\$recovered" ]; then position=(--wsrep-start-position="\$recovered"); fi
fi
# Detached (own session, no terminal, output to a file): the node outlives
# this script and whoever ran it.
setsid "\$mariadbd" --defaults-file="\$dir/my.cnf" "\${position[@]}" "\$@" \\
    </dev/null >>server.out 2>&1 &
# The pid file now, though mariadbd writes it too: owned like data/ (the
# account mariadbd runs as) so that mariadbd may overwrite it.
echo \$! >pid.new
chown --reference=data pid.new
mv -f pid.new pid
EOF
    chmod +x "$dir/start"
}

# The URLs without passwords, and where they came from.
galera_summary() {
    local url out=() urls
    IFS=, read -ra urls <<<"$FIELDSEAL_TEST_GALERA_URLS"
    for url in "${urls[@]}"; do out+=("$(redact_url "$url")"); done
    (IFS=,; echo "${out[*]} ($GALERA_ORIGIN)")
}

# Stop the throwaway cluster, if one was started. When every running node
# is Synced: a clean shutdown, node 3 first, up to 20 s each, then SIGTERM
# for those still up, SIGKILL 40 s later. Else SIGKILL at once: a node still
# joining ignores SIGTERM until it has (up to 30 s, or a whole SST), and
# its donor does not stop before the SST ends; the data is thrown away
# anyway. Then any process left behind by a killed node: an SST helper
# (rsync daemon, wsrep_sst_rsync) or a mariadbd --wsrep-recover.
stop_galera() {
    [ -n "$GALERA_DIR" ] && [ -d "$GALERA_DIR" ] || return 0
    local i pid pids=() nodes=() clean=1 proc cmdline
    for i in 1 2 3; do
        pid=$(galera_pid "$i")
        galera_pid_alive "$pid" || continue
        pids+=("$pid")
        nodes+=("$i")
        [[ "$(galera_state "$i" 2>/dev/null)" == "ON "*" Primary Synced" ]] || clean=0
    done
    if [ "$clean" -eq 1 ]; then
        # One after the other, each leaving a cluster that is still whole
        # (stopped at once, some wait 5 s for the others). SHUTDOWN returns
        # at once, unlike mariadb-admin shutdown.
        for ((i = ${#nodes[@]} - 1; i >= 0; i--)); do
            galera_sql "${nodes[i]}" SHUTDOWN >/dev/null 2>&1 || kill "${pids[i]}" 2>/dev/null || true
            galera_wait_until 20 "${pids[i]}" false || true
        done
        for ((i = 0; i < 200 && ${#pids[@]} > 0; i++)); do
            galera_any_alive "${pids[@]}" || break
            [ "$i" -eq 0 ] && for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
            sleep 0.2
        done
    fi
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for proc in /proc/[0-9]*; do
        case "$(cat "$proc/comm" 2>/dev/null)" in
        mariadbd | rsync | wsrep_sst_rsync) ;;
        *) continue ;;
        esac
        cmdline=$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null) || continue
        [[ $cmdline == *"$GALERA_DIR/"* ]] && kill -9 "${proc#/proc/}" 2>/dev/null || true
    done
}
