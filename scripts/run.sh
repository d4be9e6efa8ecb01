#!/usr/bin/env bash
# The embedded stack of `make run`: a worker per queue, beat, and the web server.
# Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
VAR=${PREFLOOP_VAR_DIR:-var}
mkdir -p "$VAR/log"

pids=()
stop() {
    rm -f "$VAR/site-url"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# Web-side jobs (exports, statistics) never wait behind a long training subprocess.
"$PY" -m celery -A annotation_site worker -Q default -n default@%h --concurrency 1 \
    --loglevel INFO --logfile "$VAR"/log/worker-default.log &
pids+=($!)
"$PY" -m celery -A annotation_site worker -Q gpu -n gpu@%h --concurrency 1 \
    --loglevel INFO --logfile "$VAR"/log/worker-gpu.log &
pids+=($!)
"$PY" -m celery -A annotation_site beat --schedule "$VAR"/celerybeat-schedule \
    --loglevel INFO --logfile "$VAR"/log/beat.log &
pids+=($!)

# where `manage.py simulate_raters` (and other local clients) find the site, on any PORT
case "$HOST" in 0.0.0.0|"::") LOCAL=127.0.0.1 ;; *) LOCAL=$HOST ;; esac
echo "http://$LOCAL:$PORT" > "$VAR/site-url"
echo "PrefLoop: http://$HOST:$PORT/  (logs in $VAR/log/; demo accounts use password 'prefloop')"
"$PY" manage.py runserver --noreload "$HOST:$PORT"
