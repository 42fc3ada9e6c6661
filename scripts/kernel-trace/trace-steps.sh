#!/usr/bin/env bash
# On the GPU machine (2 or more GPUs), from the repository root, after
# scripts/build-static.sh filled .gpu/: traces every kernel of replayed
# training steps (kernel_trace.so, CUPTI) at batch 128 and compares them
# (analyze.py): 1 GPU, then 2 GPUs without communication, with it, and with
# the diagnostic branches of COHORT_ALLREDUCE_DRY (tiny, empty). Extra runs:
# TRACE_EXTRA="name:VAR=value ..." traces 1 GPU with those variables set
# (e.g. keep:COHORT_GRAPH_MEMSETS=keep); TRACE_ONE_GPU=1 leaves out the 2-GPU runs.
# Traces and analysis land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"
source scripts/gpu-common.sh
unpack_cohort || exit 1
read -r so libdir version < <(bash scripts/kernel-trace/build.sh) || { echo "kernel-trace: build failed"; exit 1; }
echo "tracer $so ($version), libcupti in $libdir"
common=(train --device cuda --precision bf16 --dataset synthetic --epochs 1 --eval-limit 1024 --no-progress --log-every 10
        --batch-size 128 --steps-per-epoch 100 --synthetic-images 25600)
"$cohort" "${common[@]}" > "$OUT/warm-up.txt" 2>&1   # cuDNN's search, untraced, into the shared algorithm cache
traced() {  # traced <name> <command...>
    local name=$1; shift
    mkdir -p "$OUT/$name"
    env KERNEL_TRACE_DIR="$OUT/$name" CUDA_INJECTION64_PATH="$so" LD_LIBRARY_PATH="$libdir" "$@" > "$OUT/$name.txt" 2>&1
    echo "$name: exit $?; $(grep -a "epoch 1/1: train" "$OUT/$name.txt")"
}
runs=()
traced 1gpu "$cohort" "${common[@]}" --run-dir "$OUT/1gpu/run"; runs+=("$OUT/1gpu")
for spec in ${TRACE_EXTRA:-}; do
    traced "1gpu-${spec%%:*}" env "${spec#*:}" "$cohort" "${common[@]}" --run-dir "$OUT/1gpu-${spec%%:*}/run"
    runs+=("$OUT/1gpu-${spec%%:*}")
done
if [ -z "${TRACE_ONE_GPU:-}" ] && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    traced nocomm "$cohort" launch --nproc-per-node 2 -- "$cohort" "${common[@]}" --no-communication --run-dir "$OUT/nocomm/run"
    traced default "$cohort" launch --nproc-per-node 2 -- "$cohort" "${common[@]}" --run-dir "$OUT/default/run"
    for dry in tiny empty; do
        traced "$dry" env COHORT_ALLREDUCE_DRY=$dry "$cohort" launch --nproc-per-node 2 -- "$cohort" "${common[@]}" --run-dir "$OUT/$dry/run"
    done
    runs+=("$OUT/nocomm" "$OUT/default" "$OUT/tiny" "$OUT/empty")
fi
python3 scripts/kernel-trace/analyze.py "${runs[@]}" 2>&1 | tee "$OUT/analysis.txt" | head -80
