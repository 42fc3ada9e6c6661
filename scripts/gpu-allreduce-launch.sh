#!/usr/bin/env bash
# Note [All-reduces launched by the host], measured in ONE device call on a
# machine with 2 or more GPUs, from the repository root after
# scripts/build-static.sh filled .gpu/ (carry .gpu). Results in $OUT:
#   - the GPU self-test (the graph sequences and event-record nodes it uses);
#   - the median device step on 1 GPU and on all GPUs (ddp) at per-GPU batch
#     128 (twice), 32 and 512 (LAUNCH_AB_SPECS), for each --allreduce-launch way
#     (LAUNCH_AB_WAYS; default graph, host, host-stream, host-sync), with the losses of the logged steps compared between ways
#     (the same kernels and sums: they must agree to the last digit);
#   - strategy dp at 128, graph against host;
#   - kernel traces (scripts/kernel-trace) of the 2-GPU step, graph against host.
# LAUNCH_AB_PARTS (default "selftest speed dp trace") picks parts; the script
# stops starting parts past LAUNCH_AB_SECONDS (default 540).
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"
parts=" ${LAUNCH_AB_PARTS:-selftest speed dp trace} "
budget=${LAUNCH_AB_SECONDS:-540}
exec > >(tee -a "$OUT/gpu-allreduce-launch.log") 2>&1
echo "gpu-allreduce-launch: $(date -u +%Y-%m-%dT%H:%M:%SZ), parts:$parts"
cat .gpu/build-info.txt 2>/dev/null
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
source scripts/gpu-common.sh
unpack_cohort || exit 1
ranks=$(nvidia-smi -L | wc -l)
part() { [[ "$parts" == *" $1 "* ]] && [ $SECONDS -lt "$budget" ]; }
ways=${LAUNCH_AB_WAYS:-graph host host-stream host-sync}

if part selftest; then
    timeout 150 "$cohort" selftest --device cuda > "$OUT/selftest.txt" 2>&1
    echo "selftest exit $? (${SECONDS}s): $(tail -1 "$OUT/selftest.txt")"
    grep -a "FAIL" "$OUT/selftest.txt" | head -5
fi

common=(--device cuda --precision bf16 --dataset synthetic --epochs 1 --eval-limit 1024 --no-progress --log-every 10)
if part speed; then
    for spec in ${LAUNCH_AB_SPECS:-128-1 32-1 512-1 128-2}; do
        part speed || break
        b=${spec%-*}; rep=${spec#*-}; steps=$((b == 32 ? 160 : 100))
        timeout 60 "$cohort" train "${common[@]}" --batch-size $b --steps-per-epoch $steps \
            --synthetic-images $((b * steps)) --run-dir "$OUT/b$b-r$rep-1gpu" > "$OUT/b$b-r$rep-1gpu.txt" 2>&1
        for way in $ways; do
            timeout 90 "$cohort" launch --nproc-per-node $ranks -- "$cohort" train "${common[@]}" \
                --batch-size $b --steps-per-epoch $steps --synthetic-images $((b * steps * ranks)) --allreduce-launch $way \
                --run-dir "$OUT/b$b-r$rep-$way" > "$OUT/b$b-r$rep-$way.txt" 2>&1
            echo "b$b r$rep $way: exit $? (${SECONDS}s)"
        done
    done
fi
if part dp; then
    for way in graph host-sync; do
        timeout 90 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks --batch-size 128 --steps-per-epoch 100 \
            --synthetic-images $((128 * 100 * ranks)) --allreduce-launch $way --run-dir "$OUT/dp-b128-$way" \
            > "$OUT/dp-b128-$way.txt" 2>&1
        echo "dp b128 $way: exit $? (${SECONDS}s)"
    done
fi
python3 - "$OUT" "$ranks" "$ways" <<'PY'
import json, os, statistics, sys
out, ranks, ways = sys.argv[1], sys.argv[2], sys.argv[3].split()
def records(folder):
    path = os.path.join(out, folder)
    if not os.path.isdir(path): return None
    names = sorted(n for n in os.listdir(path) if n.startswith("metrics"))
    name = "metrics-rank0.jsonl" if "metrics-rank0.jsonl" in names else (names[0] if names else None)
    if name is None: return None
    return [json.loads(l) for l in open(os.path.join(path, name)) if l.strip()]
def step(folder):
    recs = records(folder) or []
    times = [r["device_step_seconds"] for r in recs if r.get("event") == "step" and "device_step_seconds" in r][2:]
    return statistics.median(times) * 1e3 if times else None
def losses(folder):
    return [r.get("loss") for r in (records(folder) or []) if r.get("event") == "step"]
def graph(folder):
    return next((r["graph"] for r in (records(folder) or []) if r.get("event") == "step" and "graph" in r), "-")
cell = lambda v: f"{v:.3f}" if v else "-"
print(f"| batch/GPU, repeat | 1 GPU step ms | way | {ranks} GPUs step ms | weak scaling | losses against graph | graph |")
print("| --- | ---: | --- | ---: | ---: | --- | --- |")
for spec in ("128-1", "128-2", "32-1", "512-1"):
    b, rep = spec.split("-")
    one = step(f"b{b}-r{rep}-1gpu")
    base = losses(f"b{b}-r{rep}-graph")
    for way in ways:
        folder = f"b{b}-r{rep}-{way}"
        many = step(folder)
        mine = losses(folder)
        same = "-" if not mine or not base else ("identical" if mine == base else
               f"differ (max {max(abs(a - c) for a, c in zip(mine, base) if a is not None and c is not None):.2e})")
        ratio = f"{one / many * 100:.1f}%" if one and many else "-"
        print(f"| {b}, {rep} | {cell(one)} | {way} | {cell(many)} | {ratio} | {same} | {graph(folder)} |")
for way in ("graph", "host-sync"):
    folder = f"dp-b128-{way}"
    if os.path.isdir(os.path.join(out, folder)):
        print(f"| dp 128 | | {way} | {cell(step(folder))} | | | {graph(folder)} |")
PY

if part trace && [ "$ranks" -ge 2 ]; then
    read -r so libdir version < <(bash scripts/kernel-trace/build.sh) || { echo "kernel-trace: build failed"; exit 1; }
    tcommon=(train "${common[@]}" --batch-size 128 --steps-per-epoch 100 --synthetic-images 25600)
    for way in graph host-sync; do
        mkdir -p "$OUT/trace/$way"
        env KERNEL_TRACE_DIR="$OUT/trace/$way" CUDA_INJECTION64_PATH="$so" LD_LIBRARY_PATH="$libdir" \
            "$cohort" launch --nproc-per-node 2 -- "$cohort" "${tcommon[@]}" --allreduce-launch $way \
            --run-dir "$OUT/trace/$way/run" > "$OUT/trace/$way.txt" 2>&1
        echo "trace $way: exit $? (${SECONDS}s)"
    done
    python3 scripts/kernel-trace/analyze.py "$OUT/trace/graph" "$OUT/trace/host-sync" 2>&1 | tee "$OUT/trace-analysis.txt" | head -40
    # The traces are large: keep the analysis.
    rm -f "$OUT"/trace/*/kernels-*.csv
fi
echo "gpu-allreduce-launch: done in ${SECONDS}s"
# The device tool returns at most 8 files: the runs travel as one archive, checkpoints left out.
find "$OUT" -name '*.safetensors' -delete
tar czf /tmp/launch-runs.tgz -C "$OUT" --exclude=gpu-allreduce-launch.log --exclude=selftest.txt \
    --exclude=trace-analysis.txt . 2>/dev/null
find "$OUT" -mindepth 1 -maxdepth 1 -not -name gpu-allreduce-launch.log -not -name selftest.txt \
    -not -name trace-analysis.txt -exec rm -rf {} +
mv /tmp/launch-runs.tgz "$OUT/runs.tgz"
