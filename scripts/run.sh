#!/usr/bin/env bash
# Start one Celery worker (both queues) and the web server; stop both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log

"$PY" -m celery -A annotation_site worker -Q default,gpu --concurrency 1 \
    --loglevel INFO --logfile var/log/worker.log &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT INT TERM

echo "PrefLoop: http://$HOST:$PORT/  (worker log: var/log/worker.log)"
"$PY" manage.py runserver "$HOST:$PORT"
