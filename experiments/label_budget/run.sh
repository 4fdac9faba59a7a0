#!/usr/bin/env bash
# The label-budget study at the scale users run: SSGAN vs the supervised baseline at 100
# and 1000 labels, 3 seeds each (12 runs of 1,760 steps, one Hydra multirun), then the
# table, the goals and the figures. The committed run took 62 minutes (the wall time in
# results.md) on an otherwise idle 2-core CPU.
#   bash experiments/label_budget/run.sh [extra Hydra overrides for every run]
# STUDY_OUT=DIR writes the table and figures to DIR instead of the repository.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m ssgan.train -m experiment=label_budget \
    method=ssgan,supervised data.num_labeled=100,1000 train.seed=0,1,2 "$@"
python experiments/label_budget/summarize.py ${STUDY_OUT:+--out "$STUDY_OUT"}
