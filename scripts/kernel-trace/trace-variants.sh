#!/usr/bin/env bash
# On the GPU machine, from the repository root, after scripts/build-static.sh
# filled .gpu/: traces the replayed training step at batch 128 (kernel_trace.so)
# in the variants named on the command line, then compares each with the first
# (analyze.py). A variant is "name,ranks[,VAR=value ...][,--flag ...]", e.g.
#   bash scripts/kernel-trace/trace-variants.sh 1gpu,1 tiny,2,COHORT_ALLREDUCE_DRY=tiny \
#       tiny-nowin,2,COHORT_ALLREDUCE_DRY=tiny,--symmetric-windows,off
# Traces land in $OUT/<name>/ (large: the analysis is $OUT/analysis.txt).
# KERNEL_TRACE=off runs the same variants untraced (no CUPTI in the process):
# then only each run's median device step is printed, for environment A/Bs
# (CUDA_DEVICE_MAX_CONNECTIONS, NCCL_MAX_CTAS ...). A variant's ranks may be
# up to the machine's GPU count.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"
cat .gpu/build-info.txt 2>/dev/null
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
source scripts/gpu-common.sh
unpack_cohort || exit 1
read -r so libdir version < <(bash scripts/kernel-trace/build.sh) || { echo "kernel-trace: build failed"; exit 1; }
common=(train --device cuda --precision bf16 --dataset synthetic --epochs 1 --eval-limit 1024 --no-progress --log-every 10
        --batch-size 128 --steps-per-epoch 100)
"$cohort" "${common[@]}" --synthetic-images 12800 > "$OUT/warm-up.txt" 2>&1   # cuDNN's search, untraced
runs=()
for spec in "$@"; do
    IFS=, read -r -a fields <<< "$spec"
    name=${fields[0]}; ranks=${fields[1]}; vars=(); flags=()
    for field in "${fields[@]:2}"; do
        if [[ $field == --* || ${#flags[@]} -gt 0 && $field != *=* ]]; then flags+=("$field"); else vars+=("$field"); fi
    done
    mkdir -p "$OUT/$name"
    launcher=(); [ "$ranks" -gt 1 ] && launcher=("$cohort" launch --nproc-per-node "$ranks" --)
    tracer=(KERNEL_TRACE_DIR="$OUT/$name" CUDA_INJECTION64_PATH="$so" LD_LIBRARY_PATH="$libdir")
    [ "${KERNEL_TRACE:-on}" = off ] && tracer=()
    env "${vars[@]}" "${tracer[@]}" \
        "${launcher[@]}" "$cohort" "${common[@]}" --synthetic-images $((12800 * ranks)) "${flags[@]}" \
        --run-dir "$OUT/$name/run" > "$OUT/$name.txt" 2>&1
    echo "$name: exit $?; $(grep -a "epoch 1/1: train" "$OUT/$name.txt")"
    runs+=("$OUT/$name")
done
# Each run's median device step (rank 0, logged steps after the first two).
python3 - "${runs[@]}" <<'PY' | tee "$OUT/steps.txt"
import json, os, statistics, sys
for folder in sys.argv[1:]:
    run = os.path.join(folder, "run")
    names = sorted(n for n in os.listdir(run) if n.startswith("metrics")) if os.path.isdir(run) else []
    path = os.path.join(run, "metrics-rank0.jsonl" if "metrics-rank0.jsonl" in names else (names[0] if names else "-"))
    try: records = [json.loads(l) for l in open(path) if l.strip()]
    except OSError: print(f"{os.path.basename(folder)}: no metrics"); continue
    times = [r["device_step_seconds"] for r in records if r.get("event") == "step" and "device_step_seconds" in r][2:]
    print(f"{os.path.basename(folder)}: device step {statistics.median(times) * 1e3:.3f} ms (median of {len(times)})" if times else f"{os.path.basename(folder)}: no steps")
PY
[ "${KERNEL_TRACE:-on}" = off ] && exit 0
python3 scripts/kernel-trace/analyze.py "${runs[@]}" 2>&1 | tee "$OUT/analysis.txt" | grep -v "^  #" | head -40
