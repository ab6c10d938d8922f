#!/usr/bin/env bash
# The local Prefect server that `make run` uses, started with Prefect's own
# `prefect server start --background` and reused by every later command through PREFECT_API_URL
# (a run then skips Prefect's ~10 s temporary-server start, and the UI shows every run).
#   scripts/prefect_server.sh url     print the API URL to use: a server already answering on
#                                     127.0.0.1:PORT, else one started now in the background;
#                                     prints nothing (Prefect's temporary server is used) when
#                                     the port is taken by something that is not Prefect
#   scripts/prefect_server.sh stop    stop the background server (`prefect server stop`)
# PORT is $CLOSECAST_PREFECT_PORT (default 4200); the server binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${CLOSECAST_PREFECT_PORT:-4200}
API="http://127.0.0.1:${PORT}/api"

healthy() {
    "$BIN/python" - "$API" <<'EOF'
import sys
import urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/health", timeout=2) as answer:
        sys.exit(0 if answer.read().strip() == b"true" else 1)
except Exception:
    sys.exit(1)
EOF
}

port_taken() {
    "$BIN/python" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"
}

case "${1:-}" in
    url)
        if healthy; then echo "$API"; exit 0; fi
        if port_taken; then
            echo "closecast: 127.0.0.1:$PORT is taken by something that is not a Prefect server;" \
                 "using Prefect's temporary server (set CLOSECAST_PREFECT_PORT to use another port)" >&2
            exit 0
        fi
        echo "closecast: starting a local Prefect server in the background: UI http://127.0.0.1:$PORT" \
             "(left running; stop it with: make server-stop)" >&2
        PREFECT_SERVER_ANALYTICS_ENABLED=false "$BIN/prefect" server start --background \
            --host 127.0.0.1 --port "$PORT" >/dev/null || true
        for _ in $(seq 1 120); do
            if healthy; then echo "$API"; exit 0; fi
            sleep 0.5
        done
        echo "closecast: the local Prefect server did not answer within 60 s;" \
             "using Prefect's temporary server" >&2
        ;;
    stop)
        "$BIN/prefect" server stop
        ;;
    *)
        echo "usage: $0 url|stop" >&2
        exit 2
        ;;
esac
