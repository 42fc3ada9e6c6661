#!/usr/bin/env bash
# The experiment suite's GPU profile in ONE device call, from the repository
# root, after scripts/build-static.sh filled .gpu/ here (carry .gpu):
#
#   bash scripts/gpu-experiments.sh                 # everything, results in $OUT/experiments
#   bash scripts/gpu-experiments.sh --only q1,q2    # extra flags go to cohort experiments
#
# Steps: unpack the binary, list the cards, convert CIFAR-10 into /tmp/cifar
# (Q4 and time to accuracy), then `cohort experiments --profile gpu` with
# PyTorch beside it (python3 with torch), under a time limit that keeps the
# whole script within COHORT_SUITE_SECONDS (default 530 s, inside the device
# tool's 10 minutes): commands that do not fit are reported as not run. The
# results folder (results.json, CSVs, report.md, report.html, trace.json, each
# command's output and metrics under runs/) lands in $OUT/experiments; the log
# in $OUT/gpu-experiments.log; the targets table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-experiments.log") 2>&1
budget="${COHORT_SUITE_SECONDS:-530}"

echo "gpu-experiments: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname); output in $OUT; budget ${budget}s"
[ -f .gpu/build-info.txt ] && cat .gpu/build-info.txt
# The GPU machine's copy of the tree has no .git: the build names its commit.
COHORT_BUILD_COMMIT="$(awk '/^commit/ { print substr($2, 1, 7) ($3 != "" ? " (uncommitted changes)" : ""); exit }' .gpu/build-info.txt 2>/dev/null)"
export COHORT_BUILD_COMMIT

# The binary travels xz-compressed (build-static.sh, gpu-common.sh).
source scripts/gpu-common.sh
unpack_cohort || exit 1

nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader || true
data=/tmp/cifar
if [ ! -f "$data/cifar-10-batches-bin/test_batch.bin" ]; then
    timeout 90 python3 .gpu/jpeg_to_cifar_binary.py .gpu/cifar-10-jpeg.tar.xz "$data" \
        || echo "gpu-experiments: CIFAR-10 could not be converted; Q4 and time to accuracy will say so"
fi
pytorch=()
if python3 -c 'import torch, torchvision' 2>/dev/null; then
    pytorch=(--pytorch "$(command -v python3)")
else
    echo "gpu-experiments: python3 does not import torch and torchvision: no PyTorch rows"
    pytorch=(--no-pytorch)
fi

# What is left for the suite, less a margin for writing the reports and the summary.
limit=$((budget - SECONDS - 20))
echo "=== cohort experiments ($(date -u +%H:%M:%S), time limit ${limit}s)"
timeout --kill-after=10 $((limit + 15)) "$cohort" experiments --profile gpu --out "$OUT/experiments" \
    --data "$data" "${pytorch[@]}" --benchmarks benchmarks --time-limit "$limit" "$@"
rc=$?

echo
echo "=== summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECONDS}s, cohort experiments exit $rc)"
report="$OUT/experiments/report.md"
if [ -f "$report" ]; then
    grep -E '^\| (Card|Commit|Note) ' "$report" | cut -c1-400
    sed -n '/^## Targets/,$p' "$report"
else
    echo "no report: see $OUT/gpu-experiments.log"
fi
# The device tool returns at most 8 files: the results folder travels as one
# archive (checkpoints left out), the report beside it for a first look.
if [ -d "$OUT/experiments" ]; then
    cp "$OUT/experiments/report.md" "$OUT/report.md" 2>/dev/null
    tar czf "$OUT/experiments.tgz" -C "$OUT" --exclude='*.safetensors' experiments && rm -rf "$OUT/experiments"
    ls -la "$OUT"
fi
exit $rc
