# shellcheck shell=bash
# Shared helpers for the scripts in this directory. Source it, don't run it:
#   . "$(dirname "$0")/lib.sh"
# All diagnostics go to stderr so that stdout stays the tool's own output.

# Name of the calling script, for message prefixes ("deps: ...").
SCRIPT_NAME=$(basename "$0")

note() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# True when `sudo` can be used to become root (not root, sudo installed).
can_sudo() { ! is_root && command -v sudo >/dev/null 2>&1; }

# Run a command as root: directly when root, else through sudo. Without a
# terminal (CI) sudo must not prompt, so it gets -n and fails fast instead.
as_root() {
    if is_root; then
        "$@"
    elif can_sudo; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        return 1
    fi
}

# Install Debian packages quietly, one line per package. `apt-get update`
# runs at most once per process, and only when something is installed.
APT_UPDATED=0
apt_install() {
    [ "$#" -gt 0 ] || return 0
    if ! is_root && ! can_sudo; then
        die "need the Debian packages: $*. Install them as root (apt-get install $*), then rerun."
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "need the packages: $* (Debian names), but apt-get is missing. Install their equivalents, then rerun."
    local pkg log
    log=$(mktemp)
    for pkg in "$@"; do note "installing $pkg"; done
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 || {
            cat "$log" >&2
            rm -f "$log"
            die "apt-get update failed"
        }
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >"$log" 2>&1 || {
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "apt-get install $* failed"
    }
    rm -f "$log"
}

# Print the path of the first of the given programs that exists: on PATH,
# in the sbin directories (often not on a normal user's PATH), or in the
# newest /usr/lib/postgresql/<version>/bin (Debian keeps initdb there).
find_bin() {
    local name dir pg_dirs
    mapfile -t pg_dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
        for dir in /usr/sbin /sbin /usr/libexec "${pg_dirs[@]}"; do
            if [ -x "$dir/$name" ]; then
                echo "$dir/$name"
                return 0
            fi
        done
    done
    return 1
}

# A database URL with any password replaced by "***", safe to print.
redact_url() { printf '%s\n' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Print the first port from $1 upwards (100 tries) that nothing listens on.
free_port() {
    local port
    for ((port = $1; port < $1 + 100; port++)); do
        if ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "no free TCP port in $1..$(($1 + 99))"
}

# The temp dir of throwaway servers, made on first use: TMP_ROOT. Whoever
# calls make_tmp_root deletes it on exit.
TMP_ROOT=""
make_tmp_root() {
    [ -n "$TMP_ROOT" ] && return 0
    # Physical path (no symlinks): it is compared with what servers report.
    TMP_ROOT=$(cd "$(mktemp -d -t fieldseal-test.XXXXXX)" && pwd -P)
    chmod 711 "$TMP_ROOT" # the postgres account must reach its subdir
}
