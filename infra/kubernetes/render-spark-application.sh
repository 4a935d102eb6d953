#!/usr/bin/env bash
# Print the SparkApplication of one job of jobs/ (spark-application.yaml filled in).
#   render-spark-application.sh JOB [JOB ARGS...]     e.g. build_features --date 2026-03-10
# IMAGE (default marquee:latest) names the image; the job always gets the cluster
# configuration (--config /opt/marquee/conf/cluster.example.yaml, or CONFIG) and the
# operator's master (the session factory would otherwise use the config's spark.master).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 JOB [JOB ARGS...]" >&2; exit 2; }
JOB=$1; shift
[ -f "$here/../../jobs/$JOB.py" ] || { echo "error: no job $JOB in jobs/" >&2; exit 2; }
CONFIG=${CONFIG:-/opt/marquee/conf/cluster.example.yaml}
K8S_MASTER=${K8S_MASTER:-k8s://https://kubernetes.default.svc:443}
args=("$@" --config "$CONFIG" --master "$K8S_MASTER")
quoted=$(printf '"%s", ' "${args[@]}")
export JOB JOB_NAME=${JOB//_/-} IMAGE=${IMAGE:-marquee:latest} ARGUMENTS=${quoted%, }
export RUN_SUFFIX=${RUN_SUFFIX:-$(date -u +%Y%m%d%H%M%S)}
envsubst '${JOB} ${JOB_NAME} ${IMAGE} ${ARGUMENTS} ${RUN_SUFFIX}' <"$here/spark-application.yaml"
