#!/usr/bin/env bash
# Q4's large-batch recipes, swept in one device call on a machine with 4 GPUs,
# from the repository root after scripts/build-static.sh filled .gpu/:
#
#   bash scripts/gpu-q4-sweep.sh            # results under $OUT (default ./gpu-out)
#   Q4_SWEEP_ONLY='lars|sgd' bash scripts/gpu-q4-sweep.sh   # the recipes whose name matches
#
# Why: the suite's Q4 runs each rule once with one setting; which setting
# closes the gap (the LR, warm-up, LARS's eta, label smoothing, zero-init
# residual, batch-norm recalibration) is a question of many short runs. Each
# recipe below is `cohort train` on real CIFAR-10, 4 ranks x 2048 (global
# 8192: six and a bit steps an epoch), 5 epochs, bf16; the recipes are
# listed in the order that matters, so a run cut short by the time limit
# loses the least useful ones. Then time-to-accuracy candidates (4 ranks,
# --target-accuracy 0.9). The summary prints each run's test accuracy per
# epoch, the last training loss and its wall time; every run's rank-0
# metrics stay in $OUT/q4-sweep/<name>.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT/q4-sweep"
exec > >(tee -a "$OUT/gpu-q4-sweep.log") 2>&1
deadline=$((SECONDS + ${Q4_SWEEP_SECONDS:-300}))
only="${Q4_SWEEP_ONLY:-.}"

echo "gpu-q4-sweep: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
[ -f .gpu/build-info.txt ] && cat .gpu/build-info.txt
source scripts/gpu-common.sh
unpack_cohort || exit 1
convert_cifar /tmp/cifar > /dev/null || { echo "gpu-q4-sweep: CIFAR-10 could not be converted"; exit 1; }
gpus=$(nvidia-smi -L | wc -l)
ranks=$(( gpus >= 4 ? 4 : gpus ))

large=(--device cuda --data /tmp/cifar --precision bf16 --epochs 5 --batch-size $((8192 / ranks)) --momentum 0.9
       --nesterov --weight-decay 0.0005 --log-every 50 --no-progress)
lars=(--optimizer lars --warmup-epochs 2 --schedule linear)
sgd=(--warmup-epochs 2 --schedule linear)
recal=(--bn-recalibration-batches 4)
# name: flags, most telling first.
recipes=(
    "lars6.4-recal:--lr 6.4 ${lars[*]} ${recal[*]}"
    "lars6.4-recal-zi:--lr 6.4 ${lars[*]} ${recal[*]} --zero-init-residual"
    "lars6.4-recal-zi-ls:--lr 6.4 ${lars[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "same0.1-recal:--lr 0.1 --schedule linear ${recal[*]}"
    "sqrt0.8-recal-zi:--lr 0.8 ${sgd[*]} ${recal[*]} --zero-init-residual"
    "linear6.4-recal-zi:--lr 6.4 ${sgd[*]} ${recal[*]} --zero-init-residual"
    "sgd3.2-recal-zi-ls:--lr 3.2 ${sgd[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "sgd1.6-recal-zi-ls:--lr 1.6 ${sgd[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "lars3.2-recal-zi-ls:--lr 3.2 ${lars[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "lars12.8-recal-zi-ls:--lr 12.8 ${lars[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "lars6.4w1-recal-zi-ls:--lr 6.4 --optimizer lars --warmup-epochs 1 --schedule linear ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "lars6.4-recal-zi-ls-nd:--lr 6.4 ${lars[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1 --no-decay-on-norm-and-bias"
    "lars6.4eta2-recal-zi-ls:--lr 6.4 ${lars[*]} --lars-eta 0.002 ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "lars6.4-recal-zi-ls-cos:--lr 6.4 --optimizer lars --warmup-epochs 2 --schedule cosine ${recal[*]} --zero-init-residual --label-smoothing 0.1"
    "lars6.4-zi-ls:--lr 6.4 ${lars[*]} --zero-init-residual --label-smoothing 0.1"
    "sgd3.2-recal-zi-ls-nd:--lr 3.2 ${sgd[*]} ${recal[*]} --zero-init-residual --label-smoothing 0.1 --no-decay-on-norm-and-bias"
)
# Time to 90% on 4 GPUs: the suite's recipe (global 512) and larger per-GPU batches (faster epochs).
tta=(--device cuda --data /tmp/cifar --precision bf16 --nesterov --warmup-epochs 2 --schedule linear --label-smoothing 0.1
     --weight-decay 0.0005 --target-accuracy 0.9 --log-every 50 --no-progress)
tta_recipes=(
    "tta-4x128-lr0.4-e30:--batch-size 128 --lr 0.4 --epochs 30"
    "tta-4x256-lr0.8-e30:--batch-size 256 --lr 0.8 --epochs 30"
    "tta-4x256-lr0.6-e36:--batch-size 256 --lr 0.6 --epochs 36"
    "tta-4x128-lr0.4-e26:--batch-size 128 --lr 0.4 --epochs 26"
)

port=29800
sweep() {  # sweep <common flags name> <recipe>...
    local -n base=$1; shift
    for recipe in "$@"; do
        local name="${recipe%%:*}" flags="${recipe#*:}"
        [[ "$name" =~ $only ]] || continue
        local left=$((deadline - SECONDS))
        if [ "$left" -lt 25 ]; then echo "=== $name: skipped, out of time"; continue; fi
        port=$((port + 2))
        echo; echo "=== $name ($(date -u +%H:%M:%S), limit $((left < 90 ? left : 90))s): $flags"
        local start=$SECONDS
        # shellcheck disable=SC2086
        timeout --kill-after=5 $((left < 90 ? left : 90)) "$cohort" launch --nproc-per-node $ranks --master-port $port -- \
            "$cohort" train "${base[@]}" $flags --run-dir "/tmp/q4-sweep/$name" > "$OUT/q4-sweep/$name.txt" 2>&1
        echo "exit $? after $((SECONDS - start)) s"
        cp "/tmp/q4-sweep/$name/metrics-rank0.jsonl" "$OUT/q4-sweep/$name.jsonl" 2>/dev/null
        grep -E "error|Error|failed" "$OUT/q4-sweep/$name.txt" | head -3
    done
}
sweep large "${recipes[@]}"
sweep tta "${tta_recipes[@]}"

echo; echo "=== summary"
python3 - "$OUT/q4-sweep" <<'PY'
import json, os, sys
folder = sys.argv[1]
print("| run | test accuracy per epoch | final | last train loss | training s | s to target |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for name in sorted(os.listdir(folder), key=lambda n: os.path.getmtime(os.path.join(folder, n))):
    if not name.endswith(".jsonl"): continue
    records = [json.loads(l) for l in open(os.path.join(folder, name)) if l.strip()]
    evals = [r for r in records if r.get("event") == "eval"]
    epochs = [r for r in records if r.get("event") == "epoch"]
    accs = " ".join(f"{r['test_accuracy']*100:.1f}" for r in evals)
    final = f"{evals[-1]['test_accuracy']*100:.2f}%" if evals else "none"
    loss = f"{epochs[-1]['train_loss']:.3f}" if epochs else ""
    seconds = sum(r.get("seconds", 0) for r in epochs)
    target = next((r.get("training_seconds_to_target") for r in evals if "training_seconds_to_target" in r), None)
    print(f"| {name[:-6]} | {accs} | {final} | {loss} | {seconds:.2f} | {'' if target is None else f'{target:.2f}'} |")
PY
