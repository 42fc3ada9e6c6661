#!/usr/bin/env bash
# On a GPU machine with 2 or more GPUs (carrying .gpu from scripts/build-static.sh):
# --strategy dp (one process, a thread per GPU, NCCL from ncclCommInitAll)
# against ddp (cohort launch, a process per GPU) with the same arguments, twice
# each, then a failing dp run that must end promptly naming its replica.
#
#   bash scripts/gpu-dp.sh [batch per GPU] [steps]     # defaults: 128 80
#
# What it checks (Note [NCCL for replica threads]): dp starts, trains and exits
# cleanly (no deadlock between one replica's allocation and another's NCCL
# kernel, no hang in ncclCommDestroy); its images/s per GPU within 10% of ddp's;
# its parameters and losses close to ddp's (not bit for bit: cuDNN picks
# algorithms by timing in each process); a failed replica aborts NCCL and ends
# the process. Logs and metrics in $OUT/dp-*, the comparison printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
batch="${1:-128}"
steps="${2:-80}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-dp.log") 2>&1
source scripts/gpu-common.sh
unpack_cohort || exit 1
nvidia-smi -L
cat .gpu/build-info.txt 2>/dev/null
run=(train --device cuda --dataset synthetic --model resnet18 --epochs 1 --batch-size "$batch" --steps-per-epoch "$steps"
     --eval-limit 1000 --log-every 10 --no-progress --seed 5 --lr 0.05)
for round in 1 2; do
    rm -rf "$OUT/dp-dp$round" "$OUT/dp-ddp$round"
    start=$(date +%s)
    timeout 240 "$cohort" "${run[@]}" --strategy dp --replicas 2 --run-dir "$OUT/dp-dp$round" > "$OUT/dp-dp$round.log" 2>&1
    echo "dp  round $round: exit $? in $(( $(date +%s) - start )) s"
    start=$(date +%s)
    timeout 240 "$cohort" launch --nproc-per-node 2 -- "$cohort" "${run[@]}" --run-dir "$OUT/dp-ddp$round" \
        > "$OUT/dp-ddp$round.log" 2>&1
    echo "ddp round $round: exit $? in $(( $(date +%s) - start )) s"
done
grep -h "strategy\|global batch\|Error\|failed" "$OUT/dp-dp1.log" "$OUT/dp-ddp1.log" | cut -c1-300
python3 - "$OUT" <<'PY'
import json, statistics, struct, sys
import numpy as np
out = sys.argv[1]
def steps(run, rank=0):
    rows = [json.loads(line) for line in open(f"{out}/dp-{run}/metrics-rank{rank}.jsonl")]
    return [row for row in rows if row["event"] == "step"]
def parameters(run):
    data = open(f"{out}/dp-{run}/checkpoint.safetensors", "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    return {name: np.frombuffer(data[8 + size + v["data_offsets"][0]:8 + size + v["data_offsets"][1]], dtype=np.float32)
            for name, v in header.items() if name != "__metadata__" and v["dtype"] == "F32" and not name.startswith("optimizer.")}
speed = {}
for run in ("dp1", "ddp1", "dp2", "ddp2"):
    try:
        rates = [row["images_per_second"] for row in steps(run)][1:]  # the first window holds the warm-up
        speed[run] = statistics.median(rates)
        print(f"{run}: rank 0 images/s median {speed[run]:.0f} over {len(rates)} windows of 10 steps")
    except Exception as error:
        print(f"{run}: no metrics ({error})")
for r in ("1", "2"):
    if "dp" + r in speed and "ddp" + r in speed:
        print(f"round {r}: dp / ddp = {speed['dp' + r] / speed['ddp' + r]:.3f} (the goal: at least 0.90)")
try:
    a, b = parameters("dp1"), parameters("ddp1")
    worst = max(a, key=lambda name: float(np.max(np.abs(a[name] - b[name]))))
    print(f"dp1 against ddp1: largest parameter difference {float(np.max(np.abs(a[worst] - b[worst]))):.3g} ({worst})")
    print("losses dp1 ", [round(row["loss"], 5) for row in steps("dp1")])
    print("losses ddp1", [round(row["loss"], 5) for row in steps("ddp1")])
except Exception as error:
    print("no parameter comparison:", error)
PY
start=$(date +%s)
timeout 120 "$cohort" "${run[@]}" --steps-per-epoch 5 --strategy dp --replicas 2 --lr 1e30 --run-dir "$OUT/dp-fail" \
    > "$OUT/dp-fail.log" 2>&1
echo "failing dp run: exit $? in $(( $(date +%s) - start )) s (expected: non-zero, seconds, a replica named):"
grep -i "replica\|error" "$OUT/dp-fail.log" | tail -3 | cut -c1-300
