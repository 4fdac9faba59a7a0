#!/usr/bin/env bash
# The label-budget study in one command: SSGAN vs the supervised baseline at 100 and
# 1000 labels, 3 seeds each (12 runs, one Hydra multirun), then the table and plot.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m ssgan.train -m experiment=label_budget \
    train.mode=ssgan,supervised data.num_labeled=100,1000 train.seed=0,1,2 "$@"
python experiments/label_budget/summarize.py
