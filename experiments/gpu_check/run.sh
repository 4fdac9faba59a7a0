#!/usr/bin/env bash
# The GPU check in one command, for a machine with a GPU lent for a few minutes:
# training bench (tutorial and improved_gan, fp32 and bf16, train.steps_per_loop 1 and
# the default, train.strategy=mirrored) and the serving bench, all in one process,
# written as a markdown table to experiments/gpu_check/results.md (+ results.json).
#
#   experiments/gpu_check/run.sh                 # on the GPU machine (not yet timed on one)
#   experiments/gpu_check/run.sh --tiny          # tiny sizes: checks the script on a CPU
#   experiments/gpu_check/run.sh --budget-s 300  # skip what would start after 300 s
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python experiments/gpu_check/check.py "$@"
