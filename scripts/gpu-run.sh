#!/usr/bin/env bash
# The one command to run on the GPU machine, from the repository root, after
# scripts/build-static.sh filled .gpu/ here:
#
#   bash scripts/gpu-run.sh            # results under $OUT (default ./gpu-out)
#
# Steps: the card (nvidia-smi), CIFAR-10 converted into /tmp/cifar, `cohort
# info`, `cohort selftest --device cuda` (float32 and bf16 rows, graph
# replay), `cohort bench --device cuda` in fp32 and in bf16 (steps replayed
# from a CUDA graph) and bf16 again with `--no-graphs` (eager), `cohort bench
# convs` (bf16 batch 512: each convolution against a cuBLAS GEMM, each
# batch-norm kernel's GB/s), the PyTorch reference at its best (cuDNN
# benchmark mode, 5 steps per synchronisation) in fp32 and in bf16 +
# channels_last, a repeated bf16 pair, the comparison tables, and last a
# short summary. The results files are few (the device tool returns 8). A failing step does not stop the ones after it; each
# runs under `timeout` and the whole stays within about 9 minutes.
# Everything is logged to $OUT/gpu-run.log; JSON results land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-run.log") 2>&1

batches=(32 128 512 2048)
deadline=$((SECONDS + 520))   # 8 min 40 s for every step together
names=() codes=() durations=()

# step <name> <seconds> <command...>: runs the command under timeout (cut to
# what is left of the deadline) and records its exit code and duration.
step() {
    local name="$1" budget="$2"
    shift 2
    local left=$((deadline - SECONDS))
    [ "$budget" -gt "$left" ] && budget="$left"
    echo
    echo "=== $name ($(date -u +%H:%M:%S), limit ${budget}s): $*"
    local start=$SECONDS rc
    if [ "$budget" -lt 5 ]; then
        echo "skipped: out of time"
        rc=skipped
    else
        timeout --kill-after=10 "$budget" "$@"
        rc=$?
        [ "$rc" -eq 124 ] && echo "timed out after ${budget}s"
    fi
    names+=("$name") codes+=("$rc") durations+=($((SECONDS - start)))
}

echo "gpu-run: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname); output in $OUT"
[ -f .gpu/build-info.txt ] && cat .gpu/build-info.txt
# The binary travels xz-compressed (see build-static.sh and gpu-common.sh).
source scripts/gpu-common.sh
rm -f "$cohort"  # this script always unpacks the carried binary afresh
unpack_cohort

step "nvidia-smi" 15 nvidia-smi --query-gpu=index,name,driver_version,memory.total,temperature.gpu,utilization.gpu,clocks.sm,clocks.max.sm --format=csv
step "cifar10 to /tmp/cifar" 60 python3 .gpu/jpeg_to_cifar_binary.py .gpu/cifar-10-jpeg.tar.xz /tmp/cifar
step "cohort info" 20 "$cohort" info
# The self-test runs every op in float32 and again in bf16 (--no-bf16 skips those rows).
step "cohort selftest" 170 "$cohort" selftest --device cuda --json "$OUT/selftest.json"
# Again in true float32 (no TF32), float32 rows only: the tight tolerances that prove the op chain itself.
step "cohort selftest fp32" 60 "$cohort" selftest --device cuda --no-tf32 --matrix-precision fp32 --no-bf16 \
    --json "$OUT/selftest-fp32.json"
step "cohort bench" 90 "$cohort" bench --device cuda --batch-sizes "${batches[@]}" --json "$OUT/bench-cohort.json"
# bf16: cuDNN's Find runs again for every bf16 geometry at its first use (seconds each).
step "cohort bench bf16" 100 "$cohort" bench --device cuda --precision bf16 --batch-sizes "${batches[@]}" \
    --json "$OUT/bench-cohort-bf16.json"
# fp32 with every convolution on cuDNN: the GEMM paths (Note [Convolution paths]) were chosen on bf16 timings.
step "cohort bench fp32 cudnn" 60 env COHORT_CONV_PATH=cudnn "$cohort" bench --device cuda --batch-sizes "${batches[@]}" \
    --json "$OUT/bench-cohort-fp32-cudnn.json"
step "cohort bench bf16 eager" 60 "$cohort" bench --device cuda --precision bf16 --no-graphs \
    --batch-sizes "${batches[@]}" --json "$OUT/bench-cohort-bf16-eager.json"
step "cohort bench convs" 90 "$cohort" bench convs --device cuda --json "$OUT/bench-convs.json"
# PyTorch at its best: cuDNN's benchmark mode, timed in blocks of 5 steps per synchronisation
# (benchmarks/pytorch_resnet18.py from the checkout; .gpu holds an older copy).
pytorch_best=(--cudnn-benchmark --steps-per-sync 5 --warmup 5 --steps 20)
step "pytorch fp32" 90 python3 benchmarks/pytorch_resnet18.py --device cuda --batch-sizes "${batches[@]}" \
    "${pytorch_best[@]}" --json "$OUT/bench-pytorch-fp32.json"
step "pytorch bf16" 90 python3 benchmarks/pytorch_resnet18.py --device cuda --precision bf16 --channels-last \
    --batch-sizes "${batches[@]}" "${pytorch_best[@]}" --json "$OUT/bench-pytorch-bf16.json"
# A second bf16 pair, so the ratios come with a repeat (cards and PyTorch move by up to 10% between runs).
step "cohort bench bf16 (repeat)" 90 "$cohort" bench --device cuda --precision bf16 --batch-sizes "${batches[@]}" \
    --json "$OUT/bench-cohort-bf16-repeat.json"
step "pytorch bf16 (repeat)" 90 python3 benchmarks/pytorch_resnet18.py --device cuda --precision bf16 --channels-last \
    --batch-sizes "${batches[@]}" "${pytorch_best[@]}" --json "$OUT/bench-pytorch-bf16-repeat.json"
step "compare" 10 bash -c 'rc=0
    echo "cohort fp32 vs pytorch fp32:"
    python3 benchmarks/compare.py "$1/bench-cohort.json" "$1/bench-pytorch-fp32.json" || rc=$?
    echo "cohort bf16 vs pytorch bf16 (channels_last):"
    python3 benchmarks/compare.py "$1/bench-cohort-bf16.json" "$1/bench-pytorch-bf16.json" || rc=$?
    echo "the same, repeated:"
    python3 benchmarks/compare.py "$1/bench-cohort-bf16-repeat.json" "$1/bench-pytorch-bf16-repeat.json" || rc=$?
    echo "cohort fp32 vs pytorch bf16 (channels_last):"
    python3 benchmarks/compare.py "$1/bench-cohort.json" "$1/bench-pytorch-bf16.json" || rc=$?
    exit $rc' compare "$OUT"

# The summary, last: step exit codes, the self-test's verdict, images/s side by side.
echo
echo "=== summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECONDS}s)"
printf '%-22s %8s %6s\n' step exit seconds
for i in "${!names[@]}"; do printf '%-22s %8s %6s\n' "${names[$i]}" "${codes[$i]}" "${durations[$i]}"; done
python3 - "$OUT" <<'PY' || true
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
selftest = load("selftest.json")
if selftest:
    print(f"selftest: {selftest['passed']} passed, {selftest['failed']} failed "
          f"(seed {selftest['seed']}, {selftest['backend']}: {selftest['details']})")
    bf16_rows = [r for r in selftest["rows"] if " bf16" in r["check"]]
    print(f"  of which bf16: {sum(r['passed'] for r in bf16_rows)} passed, "
          f"{sum(not r['passed'] for r in bf16_rows)} failed")
    for row in [r for r in selftest["rows"] if not r["passed"]][:8]:
        print(f"  FAIL {row['check']} {row['shape']} normwise {row['normwiseRelativeError']} "
              f"max-abs {row['maxRelativeError']} (tolerance {row['tolerance']})")
else:
    print("selftest: no JSON (see the log)")
exact = load("selftest-fp32.json")
if exact:
    print(f"selftest without TF32: {exact['passed']} passed, {exact['failed']} failed (seed {exact['seed']})")
ours = {r["batchSize"]: r["imagesPerSecond"] for r in load("bench-cohort.json") or []}
ours_bf16 = {r["batchSize"]: r["imagesPerSecond"] for r in load("bench-cohort-bf16.json") or []}
eager_bf16 = {r["batchSize"]: r["imagesPerSecond"] for r in load("bench-cohort-bf16-eager.json") or []}
graphs = {r["batchSize"]: r.get("graphNote", "?") if r.get("graphs") else "eager: " + r.get("graphNote", "?")
          for r in load("bench-cohort-bf16.json") or []}
fp32 = {r["batch_size"]: r["images_per_second"] for r in load("bench-pytorch-fp32.json") or []}
bf16 = {r["batch_size"]: r["images_per_second"] for r in load("bench-pytorch-bf16.json") or []}
cell = lambda table, batch: f"{table[batch]:.0f}" if batch in table else "-"
ratio = lambda a, b, batch: f"{a[batch] / b[batch]:.2f}x" if batch in a and batch in b else "-"
print(f"{'batch':>5}  {'cohort fp32':>11}  {'torch fp32':>10}  {'ratio':>6}  "
      f"{'cohort bf16':>11}  {'bf16 eager':>10}  {'torch bf16':>10}  {'ratio':>6}  graphs (bf16)")
for batch in sorted(set(ours) | set(ours_bf16) | set(fp32) | set(bf16)):
    print(f"{batch:>5}  {cell(ours, batch):>11}  {cell(fp32, batch):>10}  {ratio(ours, fp32, batch):>6}  "
          f"{cell(ours_bf16, batch):>11}  {cell(eager_bf16, batch):>10}  {cell(bf16, batch):>10}  "
          f"{ratio(ours_bf16, bf16, batch):>6}  {graphs.get(batch, '-')}")
print("bf16 targets: cohort bf16 >= 1.5x torch bf16 at batch 512, >= 3x at batch 32")
cudnn = {r["batchSize"]: r["imagesPerSecond"] for r in load("bench-cohort-fp32-cudnn.json") or []}
if cudnn:
    print("fp32 convolution paths, images/s: " + ", ".join(
        f"batch {b}: auto {cell(ours, b)} / cudnn {cell(cudnn, b)}" for b in sorted(cudnn)))
PY
# The device tool returns at most 8 files: the JSON results travel as one archive beside the log
# (written outside $OUT first: tar fails on a folder that changes under it).
( cd "$OUT" && tar czf /tmp/gpu-run-results.tgz --exclude='*.tgz' --exclude='gpu-run.log' . \
    && mv /tmp/gpu-run-results.tgz . && find . -maxdepth 1 -type f -name '*.json' -delete )
