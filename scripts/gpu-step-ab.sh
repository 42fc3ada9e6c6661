#!/usr/bin/env bash
# One environment switch of the replayed step, on against off, in one device
# call on a machine with 2 or more GPUs, from the repository root after
# scripts/build-static.sh filled .gpu/: the GPU self-test, then the median
# device step of replayed steps on 1 GPU and on all GPUs (ddp) at per-GPU
# batch 32, 128 (twice) and 512, both ways, alternating; then each way's
# kernel trace of the 1-GPU step (scripts/kernel-trace). Results in $OUT.
#
#   AB_VARIABLE=COHORT_GRAPH_MEMSETS AB_OFF=keep bash scripts/gpu-step-ab.sh   # the default:
#       memset nodes as kernels (Note [Memset nodes as kernels]) against the graphs as captured
#   AB_VARIABLE=COHORT_KRSC_COPIES AB_OFF=off bash scripts/gpu-step-ab.sh
#       Note [KRSC weights kept for the data gradient]
#   AB_VARIABLE=COHORT_PDL AB_OFF=off bash scripts/gpu-step-ab.sh
#       Note [Programmatic dependent launch] (its default, auto, is on for the ddp runs below 512 per GPU only)
#   AB_FLAG=--no-widen-in-optimizer bash scripts/gpu-step-ab.sh
#       a train flag instead: on is without it, off passes it (Note [Widening in the optimizer])
# AB_SPECS picks the per-GPU batches and repeats ("batch-repeat ...", default
# "128-1 32-1 512-1 128-2"); AB_TRACE=off leaves out the kernel traces.
# The logged losses of each way are compared (a switch that only changes how
# kernels launch must leave them identical).
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"
flag=${AB_FLAG:-}
variable=${AB_VARIABLE:-}; off=${AB_OFF:-keep}
[ -z "$flag" ] && [ -z "$variable" ] && variable=COHORT_GRAPH_MEMSETS
exec > >(tee -a "$OUT/gpu-step-ab.log") 2>&1
if [ -n "$flag" ]; then
    echo "gpu-step-ab: $(date -u +%Y-%m-%dT%H:%M:%SZ), without $flag (on) against with it (off)"
else
    echo "gpu-step-ab: $(date -u +%Y-%m-%dT%H:%M:%SZ), $variable unset (on) against $variable=$off (off)"
fi
cat .gpu/build-info.txt 2>/dev/null
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
source scripts/gpu-common.sh
unpack_cohort || exit 1
ranks=$(nvidia-smi -L | wc -l)
timeout 120 "$cohort" selftest --device cuda > "$OUT/selftest.txt" 2>&1
echo "selftest exit $?: $(tail -1 "$OUT/selftest.txt")"
grep -a "fills inside a graph\|graph replay" "$OUT/selftest.txt" | head -6
common=(--device cuda --precision bf16 --dataset synthetic --epochs 1 --eval-limit 1024 --no-progress --log-every 10)
specs=${AB_SPECS:-128-1 32-1 512-1 128-2}
for spec in $specs; do
    b=${spec%-*}; rep=${spec#*-}; steps=$((b == 32 ? 160 : 100))
    for way in on off; do
        # on: the variable unset (whatever the caller's environment holds); off: set to $off.
        setting=(); flags=()
        if [ -n "$flag" ]; then
            [ $way = off ] && flags=($flag)
        else
            setting=(-u "$variable"); [ $way = off ] && setting=("$variable=$off")
        fi
        timeout 60 env "${setting[@]}" "$cohort" train "${common[@]}" "${flags[@]}" --batch-size $b --steps-per-epoch $steps \
            --synthetic-images $((b * steps)) --run-dir "$OUT/b$b-r$rep-$way-1gpu" > "$OUT/b$b-r$rep-$way-1gpu.txt" 2>&1
        timeout 90 env "${setting[@]}" "$cohort" launch --nproc-per-node $ranks -- "$cohort" train "${common[@]}" "${flags[@]}" \
            --batch-size $b --steps-per-epoch $steps --synthetic-images $((b * steps * ranks)) \
            --run-dir "$OUT/b$b-r$rep-$way-${ranks}gpu" > "$OUT/b$b-r$rep-$way-${ranks}gpu.txt" 2>&1
    done
done
python3 - "$OUT" "$ranks" "$specs" <<'PY'
import json, os, statistics, sys
out, ranks, specs = sys.argv[1], sys.argv[2], sorted(sys.argv[3].split(), key=lambda s: [int(x) for x in s.split("-")])
def records(folder):
    path = os.path.join(out, folder)
    names = [n for n in os.listdir(path) if n.startswith("metrics")] if os.path.isdir(path) else []
    name = "metrics-rank0.jsonl" if "metrics-rank0.jsonl" in names else "metrics.jsonl"
    if name not in names: return []
    return [json.loads(l) for l in open(os.path.join(path, name)) if l.strip()]
def step(folder):
    recs = [r["device_step_seconds"] for r in records(folder) if r.get("event") == "step" and "device_step_seconds" in r][2:]
    return statistics.median(recs) * 1e3 if recs else None
def losses(folder): return [r.get("loss") for r in records(folder) if r.get("event") == "step"]
print(f"| batch/GPU, repeat | way | 1 GPU step ms | {ranks} GPUs step ms | weak scaling | logged losses, on against off |")
print("| --- | --- | ---: | ---: | ---: | --- |")
for spec in specs:
    b, rep = spec.split("-")
    for way in ("off", "on"):
        one, many = step(f"b{b}-r{rep}-{way}-1gpu"), step(f"b{b}-r{rep}-{way}-{ranks}gpu")
        cell = lambda v: f"{v:.3f}" if v else "-"
        ratio = f"{one / many * 100:.1f}%" if one and many else "-"
        same = "-"
        if way == "on":
            pairs = [(f"b{b}-r{rep}-{w}-1gpu", f"b{b}-r{rep}-{w}-{ranks}gpu") for w in ("on", "off")]
            verdicts = []
            for a, c in zip(*pairs):
                la, lc = losses(a), losses(c)
                verdicts.append("-" if not la or not lc else "identical" if la == lc else
                                f"differ (max {max(abs(x - y) for x, y in zip(la, lc) if x is not None and y is not None):.2e})")
            same = f"1 GPU {verdicts[0]}, {ranks} GPUs {verdicts[1]}"
        print(f"| {b}, {rep} | {way} | {cell(one)} | {cell(many)} | {ratio} | {same} |")
PY
# Each way's kernel trace of the 1-GPU step at 128 (1gpu: on; 1gpu-off); environment switches only.
[ -n "$flag" ] || [ "${AB_TRACE:-on}" = off ] && exit 0
OUT="$OUT/trace" TRACE_ONE_GPU=1 TRACE_EXTRA="off:$variable=$off" timeout 120 bash scripts/kernel-trace/trace-steps.sh 2>&1 | tail -30
