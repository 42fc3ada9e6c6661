#!/usr/bin/env bash
# On the GPU machine, after scripts/gpu-run.sh has unpacked the binary and the data:
# accuracy parity with PyTorch (the same recipe, both in this call) and the
# checkpoint check (a Cohort checkpoint in torchvision gives Cohort's logits).
#
#   bash scripts/gpu-parity.sh [epochs] [precision]     # defaults: 30 fp32
#
# Results in $OUT: parity-cohort/metrics.jsonl, parity-pytorch.json,
# checkpoint-check.json, and a summary printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
epochs="${1:-30}"
precision="${2:-fp32}"
data=/tmp/cifar
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-parity.log") 2>&1
# A fresh machine has neither the unpacked binary nor the data (gpu-run.sh makes both the same way).
source scripts/gpu-common.sh
unpack_cohort || exit 1
convert_cifar "$data"
recipe=(--epochs "$epochs" --batch-size 512 --lr 0.4 --nesterov --warmup-epochs 2 --schedule linear
        --label-smoothing 0.1 --weight-decay 5e-4)

echo "=== cohort: ${recipe[*]} --precision $precision"
timeout 300 "$cohort" train --device cuda --data "$data" "${recipe[@]}" --precision "$precision" \
    --run-dir "$OUT/parity-cohort" --no-progress
cohort_rc=$?

echo "=== pytorch: the same recipe"
timeout 300 python3 benchmarks/pytorch_train_cifar.py --data "$data" "${recipe[@]}" --precision "$precision" \
    --json "$OUT/parity-pytorch.json"
pytorch_rc=$?

echo "=== checkpoint: torchvision loads Cohort's checkpoint and gives its logits"
checkpoint="$OUT/parity-cohort/checkpoint.safetensors"
"$cohort" eval "$checkpoint" --device cuda --data "$data" --limit 1000 --logits-out /tmp/cohort-logits.safetensors \
    && python3 benchmarks/pytorch_checkpoint_check.py "$checkpoint" /tmp/cohort-logits.safetensors "$data" --device cuda \
        | tee "$OUT/checkpoint-check.json"
check_rc=${PIPESTATUS[0]}
# The checkpoint is 90 MB: too big to bring back; keep the logits instead.
rm -f "$checkpoint"

echo
echo "=== parity summary (exit codes: cohort $cohort_rc, pytorch $pytorch_rc, checkpoint check $check_rc)"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
cohort = [json.loads(l) for l in open(os.path.join(out, "parity-cohort", "metrics.jsonl")) if '"eval"' in l]
try:
    pytorch = json.load(open(os.path.join(out, "parity-pytorch.json")))
except OSError:
    pytorch = None
c = cohort[-1]["test_accuracy"] if cohort else float("nan")
p = pytorch["final_test_accuracy"] if pytorch else float("nan")
print(f"final test accuracy: cohort {100 * c:.2f}%  pytorch {100 * p:.2f}%  difference {100 * (c - p):+.2f} points")
epoch = [json.loads(l) for l in open(os.path.join(out, "parity-cohort", "metrics.jsonl")) if '"event":"epoch"' in l]
if epoch and pytorch:
    print(f"training seconds: cohort {sum(e['seconds'] for e in epoch):.1f}  pytorch {pytorch['training_seconds']:.1f}")
PY
