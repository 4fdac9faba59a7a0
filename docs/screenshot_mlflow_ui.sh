#!/usr/bin/env bash
# Screenshot of the project's own MLflow UI for the README (needs Debian's chromium).
#   bash docs/screenshot_mlflow_ui.sh [store-uri] [experiment-name] [output.png] [table|charts]
# Starts `mlflow ui` on a free loopback port, lets headless Chromium render the run
# table of the experiment, saves the PNG, and stops the server.
set -euo pipefail
store=${1:-sqlite:///mlruns/mlflow.db}
experiment=${2:-label_budget}
out=${3:-docs/images/mlflow_ui.png}
view=${4:-table}
query=""
[ "$view" = charts ] && query="?compareRunsMode=CHART"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
exp_id=$(python - "$store" "$experiment" <<'PY'
import sys
from mlflow.tracking import MlflowClient
exp = MlflowClient(tracking_uri=sys.argv[1]).get_experiment_by_name(sys.argv[2])
print(exp.experiment_id if exp else "0")
PY
)
mlflow ui --backend-store-uri "$store" --host 127.0.0.1 --port "$port" >/tmp/ssgan-mlflow-ui.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 1
done
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1800,1000 \
  --virtual-time-budget=15000 --screenshot="$out" \
  "http://127.0.0.1:$port/#/experiments/$exp_id/runs$query" >/dev/null 2>&1
rm -rf "$profile"
echo "wrote $out"
