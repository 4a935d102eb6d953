#!/usr/bin/env bash
# A Spark standalone cluster started with the launchers that ship with pyspark
# (bin/spark-class): one master and N workers, each a JVM in the background.
#
#   infra/spark-standalone/cluster.sh start    # master, then workers; waits until all are alive
#   infra/spark-standalone/cluster.sh status   # the master's view: workers, cores, apps
#   infra/spark-standalone/cluster.sh stop
#
# Then run any job on it:  .venv/bin/marquee submit build_features \
#     --master spark://127.0.0.1:7077 -- --date 2026-03-10
#
# Settings (environment): MARQUEE_PYTHON (the venv's python: its pyspark provides the
# launchers, and executors run it), CLUSTER_DIR (pids, logs, worker folders), MASTER_HOST,
# MASTER_PORT, MASTER_WEBUI_PORT, WORKERS, WORKER_CORES, WORKER_MEMORY. On several hosts,
# start the master on one and `spark-class org.apache.spark.deploy.worker.Worker
# spark://MASTER:7077` on each worker host, with the same checkout and venv path.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
PY=${MARQUEE_PYTHON:-$repo/.venv/bin/python}
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.marquee/cluster}
MASTER_HOST=${MASTER_HOST:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-7077}
MASTER_WEBUI_PORT=${MASTER_WEBUI_PORT:-8081}
WORKERS=${WORKERS:-2}
WORKER_CORES=${WORKER_CORES:-1}
WORKER_MEMORY=${WORKER_MEMORY:-2g}
START_TIMEOUT_S=${START_TIMEOUT_S:-90}

[ -x "$PY" ] || { echo "error: $PY not found; run make setup first (or set MARQUEE_PYTHON)" >&2; exit 1; }
command -v java >/dev/null || [ -n "${JAVA_HOME:-}" ] || { echo "error: java not found; Spark needs Java 17" >&2; exit 1; }
SPARK_HOME=$("$PY" -c 'import importlib.util as u; print(u.find_spec("pyspark").submodule_search_locations[0])')
export SPARK_HOME SPARK_LOCAL_IP=$MASTER_HOST PYSPARK_PYTHON=$PY
# Jobs are submitted by spark-submit in client mode, never through the REST server.
export SPARK_MASTER_OPTS="${SPARK_MASTER_OPTS:-} -Dspark.master.rest.enabled=false"
master_url="spark://$MASTER_HOST:$MASTER_PORT"
state_url="http://$MASTER_HOST:$MASTER_WEBUI_PORT/json/"

# Ask the master's JSON endpoint: `master_says alive` prints its alive workers (-1 while
# it is not up), `master_says summary` a few lines for people.
master_says() {
    "$PY" - "$state_url" "$1" <<'PYEOF'
import json, sys, urllib.request

url, what = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(url, timeout=2) as response:
        state = json.load(response)
except OSError:
    if what == "alive":
        print(-1)
        sys.exit(0)
    sys.exit(f"spark standalone: no master at {url}")
if what == "alive":
    print(state["aliveworkers"] if state["status"] == "ALIVE" else -1)
else:
    print(f"{state['url']}: {state['status']}, {state['aliveworkers']} workers, "
          f"{state['cores']} cores, {len(state['activeapps'])} running and "
          f"{len(state['completedapps'])} completed apps")
    for app in state["completedapps"]:
        print(f"  completed: {app['name']} ({app['state']})")
PYEOF
}

workers_alive_at_least() { [ "$(master_says alive)" -ge "$1" ]; }

wait_for() {  # wait_for WHAT CONDITION...
    local what=$1; shift
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "error: $what not up after ${START_TIMEOUT_S}s; logs in $CLUSTER_DIR" >&2
            tail -n 20 "$CLUSTER_DIR"/*.log >&2 || true
            exit 1
        fi
        sleep 1
    done
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    mkdir -p "$CLUSTER_DIR"
    if running "$CLUSTER_DIR/master.pid"; then
        echo "error: a master is already running (pid $(cat "$CLUSTER_DIR/master.pid")); stop it first" >&2
        exit 1
    fi
    "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
        --host "$MASTER_HOST" --port "$MASTER_PORT" --webui-port "$MASTER_WEBUI_PORT" \
        >"$CLUSTER_DIR/master.log" 2>&1 &
    echo $! >"$CLUSTER_DIR/master.pid"
    wait_for "master $master_url" workers_alive_at_least 0
    for i in $(seq 1 "$WORKERS"); do
        mkdir -p "$CLUSTER_DIR/worker-$i"
        "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
            --host "$MASTER_HOST" --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" \
            --work-dir "$CLUSTER_DIR/worker-$i" --webui-port 0 "$master_url" \
            >"$CLUSTER_DIR/worker-$i.log" 2>&1 &
        echo $! >"$CLUSTER_DIR/worker-$i.pid"
    done
    wait_for "$WORKERS workers" workers_alive_at_least "$WORKERS"
    echo "spark standalone: $master_url with $WORKERS workers x $WORKER_CORES cores x $WORKER_MEMORY (UI http://$MASTER_HOST:$MASTER_WEBUI_PORT)"
}

stop() {
    local pidfile pid
    shopt -s nullglob
    for pidfile in "$CLUSTER_DIR"/worker-*.pid "$CLUSTER_DIR"/master.pid; do
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
    echo "spark standalone: stopped"
}

status() { master_says summary; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
