#!/usr/bin/env bash
# The one command to run on the GPU machine, from the repository root, after
# scripts/build-static.sh filled .gpu/ here:
#
#   bash scripts/gpu-run.sh            # results under $OUT (default ./gpu-out)
#
# Steps: the card (nvidia-smi), CIFAR-10 converted into /tmp/cifar, `cohort
# info`, `cohort selftest --device cuda`, `cohort bench --device cuda` (steps
# replayed from a CUDA graph) and again with `--no-graphs` (eager), the
# PyTorch reference in fp32 and in bf16 + channels_last, the comparison
# tables, and last a short summary. A failing step does not stop the ones
# after it; each runs under `timeout` and the whole stays within about 8
# minutes. Everything is logged to $OUT/gpu-run.log; JSON results land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-run.log") 2>&1

batches=(32 128 512 2048)
deadline=$((SECONDS + 470))   # 7 min 50 s for every step together
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
# The binary travels xz-compressed (see build-static.sh); it is unpacked outside
# the checkout so .gpu/ stays small. python3's lzma stands in where xz is missing.
cohort=/tmp/cohort-gpu-run/cohort
mkdir -p "$(dirname "$cohort")"
if [ -f .gpu/cohort.xz ]; then
    xz -dc .gpu/cohort.xz > "$cohort" 2>/dev/null \
        || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            .gpu/cohort.xz "$cohort"
    chmod +x "$cohort"
else
    echo "gpu-run: .gpu/cohort.xz is missing: run scripts/build-static.sh on the build machine and carry .gpu" >&2
fi

step "nvidia-smi" 15 nvidia-smi --query-gpu=index,name,driver_version,memory.total,temperature.gpu,utilization.gpu,clocks.sm,clocks.max.sm --format=csv
step "cifar10 to /tmp/cifar" 60 python3 .gpu/jpeg_to_cifar_binary.py .gpu/cifar-10-jpeg.tar.xz /tmp/cifar
step "cohort info" 20 "$cohort" info
step "cohort selftest" 150 "$cohort" selftest --device cuda --json "$OUT/selftest.json"
step "cohort bench" 120 "$cohort" bench --device cuda --batch-sizes "${batches[@]}" --json "$OUT/bench-cohort.json"
step "cohort bench eager" 60 "$cohort" bench --device cuda --no-graphs --batch-sizes "${batches[@]}" \
    --json "$OUT/bench-cohort-eager.json"
step "pytorch fp32" 60 python3 .gpu/pytorch_resnet18.py --device cuda --batch-sizes "${batches[@]}" \
    --json "$OUT/bench-pytorch-fp32.json"
step "pytorch bf16" 60 python3 .gpu/pytorch_resnet18.py --device cuda --precision bf16 --channels-last \
    --batch-sizes "${batches[@]}" --json "$OUT/bench-pytorch-bf16.json"
step "compare" 10 bash -c 'rc=0
    for precision in fp32 bf16; do
        echo "cohort vs pytorch $precision:"
        python3 benchmarks/compare.py "$1/bench-cohort.json" "$1/bench-pytorch-$precision.json" || rc=$?
    done
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
    for row in [r for r in selftest["rows"] if not r["passed"]][:5]:
        print(f"  FAIL {row['check']} {row['shape']} normwise {row['normwiseRelativeError']}")
else:
    print("selftest: no JSON (see the log)")
ours = {r["batchSize"]: r["imagesPerSecond"] for r in load("bench-cohort.json") or []}
graphs = {r["batchSize"]: r.get("graphNote", "?") if r.get("graphs") else "eager: " + r.get("graphNote", "?")
          for r in load("bench-cohort.json") or []}
eager = {r["batchSize"]: r["imagesPerSecond"] for r in load("bench-cohort-eager.json") or []}
fp32 = {r["batch_size"]: r["images_per_second"] for r in load("bench-pytorch-fp32.json") or []}
bf16 = {r["batch_size"]: r["images_per_second"] for r in load("bench-pytorch-bf16.json") or []}
cell = lambda table, batch: f"{table[batch]:.0f}" if batch in table else "-"
print(f"{'batch':>5}  {'cohort img/s':>12}  {'eager img/s':>11}  {'torch fp32':>10}  {'torch bf16':>10}  graphs")
for batch in sorted(set(ours) | set(eager) | set(fp32) | set(bf16)):
    print(f"{batch:>5}  {cell(ours, batch):>12}  {cell(eager, batch):>11}  {cell(fp32, batch):>10}  "
          f"{cell(bf16, batch):>10}  {graphs.get(batch, '-')}")
PY
