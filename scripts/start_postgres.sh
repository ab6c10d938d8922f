#!/usr/bin/env bash
# A throwaway PostgreSQL for the Prefect server (Debian's postgresql package).
#   scripts/start_postgres.sh install          install the package if its binaries are missing
#   scripts/start_postgres.sh start DIR PORT   initdb in DIR, start on 127.0.0.1:PORT (trust auth),
#                                              create database "prefect"; prints the Prefect URL
#   scripts/start_postgres.sh stop DIR         stop the server started in DIR
# As root the server runs as the "postgres" user (PostgreSQL refuses to run as root).
set -euo pipefail

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -n "$dir" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
    command -v pg_ctl >/dev/null 2>&1 && dirname "$(command -v pg_ctl)" && return 0
    return 1
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
    install)
        if find_bin >/dev/null; then echo "postgresql already installed: $(find_bin)"; exit 0; fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
        echo "postgresql installed: $(find_bin)"
        ;;
    start)
        dir=${2:?DIR}; port=${3:?PORT}; bin=$(find_bin)
        mkdir -p "$dir"
        [[ $(id -u) -eq 0 ]] && chown postgres "$dir" && chmod 700 "$dir"
        as_owner "$bin/initdb" -D "$dir/data" -U prefect --auth=trust -E UTF8 >"$dir/initdb.log"
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" >/dev/null
        as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U prefect prefect
        echo "postgresql+asyncpg://prefect@127.0.0.1:$port/prefect"
        ;;
    stop)
        dir=${2:?DIR}; bin=$(find_bin)
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
        ;;
    *)
        echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2
        ;;
esac
