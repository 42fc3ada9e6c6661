#!/usr/bin/env bash
# The README's first command: set up this machine, build Cohort, and run the main job.
# The main job trains ResNet-18 on the CPU for a short epoch (100 steps of 32 images),
# scores it on 2,000 test images, measures training throughput and runs the
# experiment suite's CPU profile (report.md / report.html). It uses the real
# CIFAR-10 when it can find or fetch it, and synthetic data (clearly labelled) otherwise,
# so it also succeeds offline with no data set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release
cohort=.build/release/cohort
data="${COHORT_CIFAR10_DIR:-$(scripts/prepare-cifar10.sh || true)}"
if [ -n "$data" ]; then
    dataset=(--data "$data")
elif "$cohort" download --into .data/download; then
    dataset=(--data .data/download)
else
    echo "quickstart: no CIFAR-10 here and none could be downloaded: training on synthetic data instead"
    dataset=(--dataset synthetic)
fi
"$cohort" info
"$cohort" train "${dataset[@]}" --model resnet18 --epochs 1 --steps-per-epoch 100 --batch-size 32 --lr 0.05 \
    --eval-limit 2000 --run-dir runs/quickstart
"$cohort" bench --batch-sizes 32 128 --json runs/quickstart/bench.json
# The experiment suite's CPU profile (about 30 s on 2 cores): Q1 and Q2/Q3 on MPI ranks, reports in runs/quickstart/experiments.
"$cohort" experiments --out runs/quickstart/experiments
