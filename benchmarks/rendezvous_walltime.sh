#!/usr/bin/env bash
# Wall time of the rendezvous suite on etcd_env's EtcdServer and on torch's, alternated in one run.
# Needs torch: run it with the rendezvous_tests session's interpreter, e.g.
#   nox -s rendezvous_tests -- --co -q >/dev/null && PYTHON=.nox/rendezvous_tests-3-11/bin/python benchmarks/rendezvous_walltime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-2}
for round in $(seq "$ROUNDS"); do
  for server in etcd_env torch; do
    start=$(date +%s.%N)
    summary=$(ETCD_ENV_RDZV_SERVER=$server "$PYTHON" -m pytest tests/rendezvous -q -p no:cacheprovider 2>&1 | tail -1)
    end=$(date +%s.%N)
    printf 'round %s  %-8s  %6.1f s  (%s)\n' "$round" "$server" "$(echo "$end - $start" | bc)" "$summary"
  done
done
