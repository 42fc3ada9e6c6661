#!/usr/bin/env bash
# Multi-GPU checks of the data-parallel path, in one device call on a machine
# with 2 or more GPUs, from the repository root after scripts/build-static.sh
# filled .gpu/:
#
#   bash scripts/gpu-ddp-check.sh          # results under $OUT (default ./gpu-out)
#
# 1. Speed, synthetic data, bf16: 1 GPU against N GPUs (ddp, one process per
#    GPU, and dp, one process with a thread per GPU) at per-GPU batch 32, 128 and 512; at 512 also
#    --no-communication (the same step without the all-reduce, ddp and dp), --no-graphs (eager,
#    with the device-timed phase split), --no-graphs --no-overlap, and
#    --allreduce-dtype fp32 (bf16 is the default in bf16). Median device step time of the logged steps.
# 2. Loss curves on the real data, global batch 1024 for 3 epochs: 1 GPU
#    against 2, 4 (and 8) GPUs, ddp and dp, test loss and accuracy per epoch.
# 3. NCCL on sockets (NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1): the multi-node
#    transport, on two ranks started by hand with torchrun's variables
#    (each rank its own "node", the NCCL id through the TCP store).
# 4. The watchdog: two ranks started by hand, rank 1 killed (SIGKILL) mid-run;
#    rank 0 must exit non-zero within 30 s, saying why.
# A summary table ends the log ($OUT/gpu-ddp-check.log); metrics stay in $OUT.
# DDP_CHECK_PARTS picks parts (default all but tuning, phases and search: speed,dpdiag,variants,curves,sockets,watchdog,launchers;
# search compares one and two cuDNN search rounds on fresh algorithm caches, 1 GPU at 128;
# phases times replayed steps' phases and buckets per rank at 1 and N GPUs (DDP_CHECK_PHASE_VARIANTS, as
# tuning's variants), and the cards' clocks (DDP_CHECK_CLOCKS= to skip);
# tuning measures all-reduce variants at 4 x 128 and 4 x 512, twice each, and the replayed
# step's phases with COHORT_GRAPH_TIMING=1);
# DDP_CHECK_BATCHES the per-GPU batches of part 1 (default 32 128 512).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-ddp-check.log") 2>&1
deadline=$((SECONDS + ${DDP_CHECK_SECONDS:-540}))
left() { echo $((deadline - SECONDS)); }

echo "gpu-ddp-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
[ -f .gpu/build-info.txt ] && cat .gpu/build-info.txt
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
gpus=$(nvidia-smi -L | wc -l)
ranks=${DDP_RANKS:-$gpus}
[ "$ranks" -gt "$gpus" ] && ranks=$gpus
source scripts/gpu-common.sh
rm -f "$cohort"
unpack_cohort || exit 1
if [ ! -d /tmp/cifar/cifar-10-batches-bin ]; then
    python3 .gpu/jpeg_to_cifar_binary.py .gpu/cifar-10-jpeg.tar.xz /tmp/cifar >/dev/null || echo "data conversion failed"
fi
"$cohort" info | head -20

parts=",${DDP_CHECK_PARTS:-speed,dpdiag,variants,curves,sockets,watchdog,launchers},"
part() { [[ "$parts" == *",$1,"* ]]; }

common=(--device cuda --precision bf16 --dataset synthetic --epochs 1 --eval-limit 1024 --no-progress --log-every 10)
run() {  # run <name> <seconds> <command...>
    local name="$1" budget="$2"; shift 2
    [ "$budget" -gt "$(left)" ] && budget=$(left)
    if [ "$budget" -lt 10 ]; then echo "=== $name: skipped, out of time"; return; fi
    echo; echo "=== $name ($(date -u +%H:%M:%S), limit ${budget}s)"
    local start=$SECONDS
    timeout --kill-after=5 "$budget" "$@" > "$OUT/$name.txt" 2>&1
    echo "exit $? after $((SECONDS - start)) s"
    grep -E "ranks:|global batch|epoch 1/|done:|error|Error|watchdog|failed" "$OUT/$name.txt" | head -8
}

# 1. Speed. Each run's synthetic epoch holds every step it times on every rank
# (50,000 images are 25 steps of 4 x 512: too few to leave warm-up out).
part speed && for b in ${DDP_CHECK_BATCHES:-32 128 512}; do
    steps=$((b >= 512 ? 100 : 160))
    run "speed-1gpu-b$b" 60 "$cohort" train "${common[@]}" --batch-size $b --steps-per-epoch $steps --synthetic-images $((b * steps * ranks)) --run-dir "$OUT/speed-1gpu-b$b"
    run "speed-${ranks}gpu-b$b" 90 "$cohort" launch --nproc-per-node $ranks -- "$cohort" train "${common[@]}" \
        --batch-size $b --steps-per-epoch $steps --synthetic-images $((b * steps * ranks)) --run-dir "$OUT/speed-${ranks}gpu-b$b"
    run "speed-${ranks}gpu-b$b-dp" 90 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks \
        --batch-size $b --steps-per-epoch $steps --synthetic-images $((b * steps * ranks)) --run-dir "$OUT/speed-${ranks}gpu-b$b-dp"
done
# dp with communication off: is what slows dp down NCCL, or the one process?
part dpdiag && run "speed-${ranks}gpu-b512-dp-nocomm" 90 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks \
    --batch-size 512 --steps-per-epoch 100 --synthetic-images $((512 * 100 * ranks)) --no-communication --run-dir "$OUT/speed-${ranks}gpu-b512-dp-nocomm"
# dp's NCCL within one process reaches peers through direct pointers; IPC handles instead
# (what separate processes use) tell whether that path is the slow part. One replica alone
# tells the dp code path's cost with nothing shared.
if part dpdiag; then
    run "speed-${ranks}gpu-b512-nocomm" 90 "$cohort" launch --nproc-per-node $ranks -- "$cohort" train "${common[@]}" \
        --batch-size 512 --steps-per-epoch 100 --synthetic-images $((512 * 100 * ranks)) --no-communication --run-dir "$OUT/speed-${ranks}gpu-b512-nocomm"
    run "speed-${ranks}gpu-b512-dp-nodirect" 90 env NCCL_P2P_DIRECT_DISABLE=1 "$cohort" train "${common[@]}" --strategy dp \
        --replicas $ranks --batch-size 512 --steps-per-epoch 100 --synthetic-images $((512 * 100 * ranks)) --run-dir "$OUT/speed-${ranks}gpu-b512-dp-nodirect"
    run "speed-1gpu-b512-dp" 60 "$cohort" train "${common[@]}" --strategy dp --replicas 1 --batch-size 512 \
        --steps-per-epoch 100 --synthetic-images $((512 * 100 * ranks)) --run-dir "$OUT/speed-1gpu-b512-dp"
    run "speed-2gpu-b512-dp" 60 "$cohort" train "${common[@]}" --strategy dp --replicas 2 --batch-size 512 \
        --steps-per-epoch 100 --synthetic-images $((512 * 100 * ranks)) --run-dir "$OUT/speed-2gpu-b512-dp"
    run "speed-${ranks}gpu-b512-dp-eager" 60 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks --batch-size 512 \
        --steps-per-epoch 60 --synthetic-images $((512 * 60 * ranks)) --no-graphs --run-dir "$OUT/speed-${ranks}gpu-b512-dp-eager"
    # dp became as fast as ddp once cuDNN's choices were cached on disk; with the cache off (a fresh
    # cache folder: every replica searches at once, in one process) a slow dp again would name the cause.
    run "speed-${ranks}gpu-b512-dp-nocache" 90 env COHORT_KERNEL_CACHE=$(mktemp -d) "$cohort" train "${common[@]}" \
        --strategy dp --replicas $ranks --batch-size 512 --steps-per-epoch 100 --synthetic-images $((512 * 100 * ranks)) \
        --run-dir "$OUT/speed-${ranks}gpu-b512-dp-nocache"
    run "speed-${ranks}gpu-b512-dp-eager-nocomm" 60 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks \
        --batch-size 512 --steps-per-epoch 60 --synthetic-images $((512 * 60 * ranks)) --no-graphs --no-communication --run-dir "$OUT/speed-${ranks}gpu-b512-dp-eager-nocomm"
fi
part variants && run "speed-1gpu-b512-eager" 60 "$cohort" train "${common[@]}" --batch-size 512 --steps-per-epoch 60 --synthetic-images $((512 * 60 * ranks)) --no-graphs \
    --run-dir "$OUT/speed-1gpu-b512-eager"
part variants && for variant in nocomm:--no-communication eager:--no-graphs nooverlap:--no-graphs:--no-overlap fp32ar:--allreduce-dtype:fp32 fp32ar-eager:--allreduce-dtype:fp32:--no-graphs; do
    name=${variant%%:*}; flags=${variant#*:}; IFS=: read -r -a extra <<< "$flags"
    run "speed-${ranks}gpu-b512-$name" 90 "$cohort" launch --nproc-per-node $ranks -- "$cohort" train "${common[@]}" \
        --batch-size 512 --steps-per-epoch 60 --synthetic-images $((512 * 60 * ranks)) "${extra[@]}" --run-dir "$OUT/speed-${ranks}gpu-b512-$name"
done

# Tuning: what the all-reduce costs the step at 4 x 128 and 4 x 512, variant by variant
# (bf16 gradients, fewer NCCL blocks contending with backward for SMs, other bucket sizes),
# each weak-scaling figure against a 1-GPU run of the same batch in the same call; every
# configuration twice, so the spread between repeats shows beside the differences.
# parse_variant <name:flags>: sets $name, and from the flags (separated by ':', "env:VAR=value"
# a variable for the run) the arrays envs and train_flags.
parse_variant() {
    local flags="" extra i spec="$1" known
    # A bare name stands for the variant of that name in the tuning list below.
    if [[ "$spec" != *:* ]]; then
        for known in $all_tuning_variants; do [ "${known%%:*}" = "$spec" ] && spec=$known; done
    fi
    name=${spec%%:*}; [[ "$spec" == *:* ]] && flags=${spec#*:}
    IFS=: read -r -a extra <<< "$flags"
    envs=(); train_flags=()
    for ((i = 0; i < ${#extra[@]}; i++)); do
        if [ "${extra[$i]}" = env ]; then envs+=("${extra[$((i + 1))]}"); i=$((i + 1)); else train_flags+=("${extra[$i]}"); fi
    done
}
# Each variant is name:flags, flags separated by ':' ("env:VAR=value" sets a variable);
# DDP_CHECK_TUNING="default lowprio" picks some by name (a name not in this list and without
# flags runs the default configuration under that name).
# (bf16 training all-reduces in bf16 by default, Note [All-reduce dtype]: fp32ar is the other wire.)
all_tuning_variants="default fp32ar:--allreduce-dtype:fp32 ctas8:env:NCCL_MAX_CTAS=8 ctas16:env:NCCL_MAX_CTAS=16
    fp32ar-ctas8:env:NCCL_MAX_CTAS=8:--allreduce-dtype:fp32 bucket4:--bucket-cap-mb:4 bucket25:--bucket-cap-mb:25
    l2:--bucket-release:layer2.1.conv2.weight sym:--symmetric-windows:on overopt:--overlap-optimizer
    sym-overopt:--symmetric-windows:on:--overlap-optimizer carveout0:env:COHORT_KERNEL_CARVEOUT=0
    merge:--merge-small-buckets sym-merge-overopt:--symmetric-windows:on:--merge-small-buckets:--overlap-optimizer
    graphtiming:env:COHORT_GRAPH_TIMING=1 lowprio:env:COHORT_NCCL_STREAM_PRIORITY=normal
    simple:env:NCCL_PROTO=Simple ll128:env:NCCL_PROTO=LL128
    nooverlap:--no-overlap sym-nooverlap:--symmetric-windows:on:--no-overlap
    sym-merge:--symmetric-windows:on:--merge-small-buckets
    ctaeff:env:NCCL_CTA_POLICY=1 sym-ctaeff:--symmetric-windows:on:env:NCCL_CTA_POLICY=1
    sym-ctazero:--symmetric-windows:on:env:NCCL_CTA_POLICY=2
    nosym:--symmetric-windows:off nomerge:--no-merge-small-buckets
    nosym-nomerge:--symmetric-windows:off:--no-merge-small-buckets
    ctas4:env:NCCL_MAX_CTAS=4 bucket18:--bucket-cap-mb:18
    split:--split-step-graph cc:--wire-conversions-on-compute-stream
    cc-nosym:--wire-conversions-on-compute-stream:--symmetric-windows:off
    dry-empty:env:COHORT_ALLREDUCE_DRY=empty dry-tiny:env:COHORT_ALLREDUCE_DRY=tiny
    dry-convert:env:COHORT_ALLREDUCE_DRY=convert"
if part tuning; then
    for b in ${DDP_CHECK_BATCHES:-128 512}; do
        images=$((b * 100 * ranks))
        for rep in 1 2; do
            run "speed-1gpu-b$b-r$rep" 60 "$cohort" train "${common[@]}" --batch-size $b --steps-per-epoch 100 \
                --synthetic-images $images --run-dir "$OUT/speed-1gpu-b$b-r$rep"
            # Replayed steps with their phases timed inside the graph (Note [Timing inside graphs]):
            # forward, backward and optimizer on one GPU, and below (variant graphtiming) on 4 with
            # each bucket's all-reduce, so the 4-GPU step's extra time has a place.
            run "speed-1gpu-b$b-graphtiming-r$rep" 60 env COHORT_GRAPH_TIMING=1 "$cohort" train "${common[@]}" \
                --batch-size $b --steps-per-epoch 100 --synthetic-images $images --run-dir "$OUT/speed-1gpu-b$b-graphtiming-r$rep"
            for variant in ${DDP_CHECK_TUNING:-$all_tuning_variants}; do
                parse_variant "$variant"
                run "speed-${ranks}gpu-b$b-$name-r$rep" 60 env "${envs[@]}" "$cohort" launch --nproc-per-node $ranks -- \
                    "$cohort" train "${common[@]}" --batch-size $b --steps-per-epoch 100 --synthetic-images $images \
                    "${train_flags[@]}" --run-dir "$OUT/speed-${ranks}gpu-b$b-$name-r$rep"
            done
        done
    done
fi

# Phases: where the N-GPU step's extra time goes, from replayed steps timed inside their graph
# (--time-graph-phases): forward, backward, exposed communication, optimizer, and each
# bucket's all-reduce (its start after the step's start and its busy time) on every rank;
# against one GPU and N GPUs without communication. First, the variables a rank sees
# through the launcher; last, the cards' clocks and power while 4 x 512 steps run with and
# without the all-reduce (a card slowed by power or heat would show there).
if part phases; then
    echo; echo "=== the variables ranks see through cohort launch"
    COHORT_GRAPH_TIMING=1 timeout 30 "$cohort" launch --nproc-per-node 2 -- /usr/bin/env 2>&1 \
        | grep -E "^(COHORT_|NCCL_NVLS)|passed to every rank" | sort | uniq -c
    for b in ${DDP_CHECK_BATCHES:-128 512}; do
        images=$((b * 100 * ranks))
        # DDP_CHECK_MARKS=1 adds each convolution's weight-gradient mark (Note [Backward progress marks]).
        # DDP_CHECK_PHASE_FLAGS: flags for every run of this part (--no-graphs: eager steps, timed the same way).
        phased=(--batch-size $b --steps-per-epoch 100 --synthetic-images $images --time-graph-phases
                ${DDP_CHECK_MARKS:+--time-gradient-marks} ${DDP_CHECK_PHASE_FLAGS:-})
        run "speed-phases-1gpu-b$b" 60 "$cohort" train "${common[@]}" "${phased[@]}" --run-dir "$OUT/speed-phases-1gpu-b$b"
        # Variants as in tuning (DDP_CHECK_PHASE_VARIANTS), the dp strategy last.
        for variant in ${DDP_CHECK_PHASE_VARIANTS:-default nocomm:--no-communication}; do
            parse_variant "$variant"
            suffix=$([ "$name" = default ] || echo "-$name")
            run "speed-phases-${ranks}gpu-b$b$suffix" 60 env "${envs[@]}" "$cohort" launch --nproc-per-node $ranks -- \
                "$cohort" train "${common[@]}" "${phased[@]}" "${train_flags[@]}" --run-dir "$OUT/speed-phases-${ranks}gpu-b$b$suffix"
        done
        run "speed-phases-${ranks}gpu-b$b-dp" 60 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks \
            "${phased[@]}" --run-dir "$OUT/speed-phases-${ranks}gpu-b$b-dp"
    done
    [ -n "${DDP_CHECK_CLOCKS-1}" ] && for variant in comm nocomm; do
        flags=(); [ $variant = nocomm ] && flags=(--no-communication)
        nvidia-smi --query-gpu=timestamp,index,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
            --format=csv,noheader -lms 100 > "$OUT/clocks-${ranks}gpu-b512-$variant.csv" 2>&1 &
        smi=$!
        run "speed-clocks-${ranks}gpu-b512-$variant" 60 "$cohort" launch --nproc-per-node $ranks -- "$cohort" train "${common[@]}" \
            --batch-size 512 --steps-per-epoch 400 --synthetic-images $((512 * 400 * ranks)) "${flags[@]}" \
            --run-dir "$OUT/speed-clocks-${ranks}gpu-b512-$variant"
        kill $smi 2>/dev/null; wait $smi 2>/dev/null
        awk -F', ' '{ n[$2]++; sm[$2] += $3; p[$2] += $5 } END { for (g in n) printf "clocks %s GPU %s: mean SM clock %.0f MHz, mean power %.0f W over %d samples\n", "'$variant'", g, sm[g] / n[g], p[g] / n[g], n[g] }' \
            "$OUT/clocks-${ranks}gpu-b512-$variant.csv" | sort
    done
fi

# Search: cuDNN's algorithm choice on a fresh cache, one search round against two (Note [Two
# search rounds]), three fresh caches each: the spread of one GPU's step at 128 between them.
if part search; then
    for rounds in 1 2; do
        for rep in 1 2 3; do
            cache=$(mktemp -d /tmp/cohort-search-XXXXXX)
            run "search-r$rounds-$rep" 60 env COHORT_FIND_ROUNDS=$rounds COHORT_KERNEL_CACHE=$cache "$cohort" train "${common[@]}" \
                --batch-size 128 --steps-per-epoch 100 --synthetic-images 12800 --time-graph-phases --run-dir "$OUT/search-r$rounds-$rep"
        done
    done
fi

# 2. Loss curves, real data, same global batch (1024)
real=(--device cuda --precision bf16 --data /tmp/cifar --epochs 3 --lr 0.8 --nesterov --warmup-epochs 1 --schedule linear
      --label-smoothing 0.1 --no-progress --log-every 20)
curves=()
if part curves; then
run "curve-1gpu" 90 "$cohort" train "${real[@]}" --batch-size 1024 --run-dir "$OUT/curve-1gpu"
# The same run with another seed: the spread that "the same loss curve" is judged against.
run "curve-1gpu-seed1" 90 "$cohort" train "${real[@]}" --batch-size 1024 --seed 1 --run-dir "$OUT/curve-1gpu-seed1"
# Every GPU count from 2 up to all of them (2 and 4 on a 4-GPU machine), both strategies.
curves+=(curve-1gpu curve-1gpu-seed1)
for n in 2 4 8; do
    [ "$n" -gt "$ranks" ] && break
    run "curve-${n}gpu" 90 "$cohort" launch --nproc-per-node $n -- "$cohort" train "${real[@]}" \
        --batch-size $((1024 / n)) --run-dir "$OUT/curve-${n}gpu"
    run "curve-${n}gpu-dp" 90 "$cohort" train "${real[@]}" --strategy dp --replicas $n \
        --batch-size $((1024 / n)) --run-dir "$OUT/curve-${n}gpu-dp"
    curves+=("curve-${n}gpu" "curve-${n}gpu-dp")
done
# The same run on all GPUs with each wire variant (name:flags as in tuning, DDP_CHECK_CURVE_VARIANTS):
# fp32 gradients on the wire, and bf16 without symmetric windows (Note [Symmetric wire buffer]).
for variant in ${DDP_CHECK_CURVE_VARIANTS:-fp32ar:--allreduce-dtype:fp32 nosym:--symmetric-windows:off}; do
    parse_variant "$variant"
    run "curve-${ranks}gpu-$name" 90 env "${envs[@]}" "$cohort" launch --nproc-per-node $ranks -- "$cohort" train \
        "${real[@]}" --batch-size $((1024 / ranks)) "${train_flags[@]}" --run-dir "$OUT/curve-${ranks}gpu-$name"
    curves+=("curve-${ranks}gpu-$name")
done
fi
part speed && run "dp-failing" 40 "$cohort" train "${common[@]}" --strategy dp --replicas $ranks --batch-size 128 --lr 1e30 \
    --steps-per-epoch 50 --run-dir "$OUT/dp-failing"

# 3 and 4: two ranks started by hand (torchrun's variables, the TCP store), one GPU each.
by_hand() {  # by_hand <name> <extra env> -- ranks' arguments
    local name="$1" envs="$2"; shift 2
    mkdir -p "$OUT/$name"
    for r in 0 1; do
        env $envs RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29650 \
            "$cohort" train "${common[@]}" "$@" --run-dir "$OUT/$name" > "$OUT/$name/rank$r.txt" 2>&1 &
        eval "pid$r=\$!"
    done
}
if part sockets && [ $(left) -gt 60 ]; then
    echo; echo "=== sockets: NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1, 2 ranks by hand"
    start=$SECONDS
    by_hand sockets "NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1" --batch-size 512 --steps-per-epoch 60
    wait $pid0; rc0=$?; wait $pid1; rc1=$?
    echo "exit $rc0/$rc1 after $((SECONDS - start)) s"
    grep -hE "ranks:|epoch 1/|error" "$OUT/sockets/rank0.txt" | head -4
    # Both ranks share the machine, so the run above registered symmetric windows (auto) on a
    # communicator whose transport is sockets; this one leaves them off, as a multi-node run does.
    echo; echo "=== sockets with --symmetric-windows off"
    by_hand sockets-nosym "NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1" --batch-size 512 --steps-per-epoch 60 --symmetric-windows off
    wait $pid0; rc0=$?; wait $pid1; rc1=$?
    echo "exit $rc0/$rc1 after $((SECONDS - start)) s"
    grep -hE "ranks:|epoch 1/|error|Error" "$OUT/sockets-nosym/rank0.txt" | head -4
fi
if part watchdog && [ $(left) -gt 60 ]; then
    echo; echo "=== watchdog: rank 1 killed mid-run"
    by_hand watchdog "" --batch-size 128 --epochs 1000
    sleep 25
    kill -9 $pid1; killed=$SECONDS
    timeout 60 bash -c "while kill -0 $pid0 2>/dev/null; do sleep 0.2; done"
    wait $pid0; rc0=$?
    echo "rank 0 exit $rc0, $((SECONDS - killed)) s after rank 1 was killed"
    tail -3 "$OUT/watchdog/rank0.txt"
    kill -9 $pid0 2>/dev/null
fi

# 5. Two launchers as two nodes (half the GPUs each), NCCL on sockets: the launchers
#    meet at node 0's store and node 0's mpirun starts both ranks (a local
#    "rsh" agent stands in for ssh).
if part launchers && [ $(left) -gt 60 ]; then
    echo; echo "=== two launchers, NCCL on sockets"
    printf '#!/bin/sh\nshift\nexec /bin/sh -c "$*"\n' > /tmp/local-rsh && chmod +x /tmp/local-rsh
    start=$SECONDS
    for node in 1 0; do
        OMPI_MCA_plm_rsh_agent=/tmp/local-rsh NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 timeout 120 \
            "$cohort" launch --nnodes 2 --node-rank $node --nproc-per-node $((ranks / 2)) --master-addr 127.0.0.1 --master-port 29700 \
            -- "$cohort" train "${common[@]}" --batch-size 256 --steps-per-epoch 40 --run-dir "$OUT/two-launchers" \
            > "$OUT/two-launchers-node$node.txt" 2>&1 &
        eval "node$node=\$!"
    done
    wait $node0; rc0=$?; wait $node1; rc1=$?
    echo "launchers exit $rc0/$rc1 after $((SECONDS - start)) s"
    grep -hE "ranks|through mpirun|epoch 1/|error|failed" "$OUT/two-launchers-node0.txt" | head -6
fi

echo; echo "=== summary"
python3 - "$OUT" "$ranks" "${curves[@]}" <<'PY'
import json, os, statistics, sys
out, ranks = sys.argv[1], int(sys.argv[2])
def steps(folder):
    for name in ("metrics.jsonl", "metrics-rank0.jsonl"):
        path = os.path.join(out, folder, name)
        if os.path.exists(path):
            records = [json.loads(l) for l in open(path) if l.strip()]
            return [r for r in records if r.get("event") == "step"], records
    return [], []
def median(records, key):
    values = [r[key] for r in records[2:] if key in r]
    return statistics.median(values) if values else None
print("| run | device s/step | images/s/GPU (device) | images/s/GPU (wall) | fwd | bwd | exposed comm | comm busy | opt |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for folder in sorted(os.listdir(out)):
    if not folder.startswith("speed-"): continue
    recs, _ = steps(folder)
    step = median(recs, "device_step_seconds")
    if step is None: print(f"| {folder} | no steps |"); continue
    batch = int(folder.split("-b")[1].split("-")[0])
    cells = [median(recs, k) for k in ("device_forward_seconds", "device_backward_seconds",
             "device_exposed_communication_seconds", "device_communication_busy_seconds", "device_optimizer_seconds")]
    fmt = lambda v: "" if v is None else f"{v*1e3:.2f} ms"
    wall = median(recs, "images_per_second")
    print(f"| {folder} | {step*1e3:.2f} ms | {batch/step:,.0f} | {wall or 0:,.0f} | " + " | ".join(fmt(c) for c in cells) + " |")
print()
for b in (32, 128, 512):
    one, _ = steps(f"speed-1gpu-b{b}")
    s1 = median(one, "device_step_seconds")
    for suffix in ("", "-dp"):
        many, _ = steps(f"speed-{ranks}gpu-b{b}{suffix}")
        sn = median(many, "device_step_seconds")
        if s1 and sn: print(f"weak scaling at {b}/GPU on {ranks} GPUs{' (dp)' if suffix else ' (ddp)'}: {s1/sn*100:.1f}% (step {s1*1e3:.2f} ms vs {sn*1e3:.2f} ms)")
# Tuning variants: weak scaling against the 1-GPU run of the same batch and repeat.
for folder in sorted(os.listdir(out)):
    if not (folder.startswith(f"speed-{ranks}gpu-b") and "-r" in folder and not folder.endswith(".txt")): continue
    batch, rest = folder[len(f"speed-{ranks}gpu-b"):].split("-", 1)
    rep = rest.rsplit("-r", 1)[1]
    one, _ = steps(f"speed-1gpu-b{batch}-r{rep}")
    many, _ = steps(folder)
    s1, sn = median(one, "device_step_seconds"), median(many, "device_step_seconds")
    if s1 and sn: print(f"tuning {folder}: weak scaling {s1/sn*100:.1f}% (step {s1*1e3:.3f} ms on 1 GPU vs {sn*1e3:.3f} ms)")
# Search rounds: one GPU's replayed step on each fresh algorithm cache.
for folder in sorted(os.listdir(out)):
    if not folder.startswith("search-r") or folder.endswith(".txt"): continue
    recs, _ = steps(folder)
    recs = recs[2:]
    if recs and "device_forward_seconds" in recs[-1]:
        med = lambda k: statistics.median(r[k] for r in recs) * 1e3
        print(f"search {folder}: step {med('device_step_seconds'):.3f} fwd {med('device_forward_seconds'):.3f} "
              f"bwd {med('device_backward_seconds'):.3f} ms")
# Phases per rank (replayed steps timed inside the graph): medians of the logged steps.
for folder in sorted(os.listdir(out)):
    if not folder.startswith("speed-phases-") or folder.endswith(".txt"): continue
    for name in sorted(os.listdir(os.path.join(out, folder))):
        if not name.startswith("metrics"): continue
        records = [json.loads(l) for l in open(os.path.join(out, folder, name)) if l.strip()]
        recs = [r for r in records if r.get("event") == "step"][2:]
        if not recs or "device_forward_seconds" not in recs[-1]:
            print(f"phases {folder} {name}: no phase timing"); continue
        med = lambda k: statistics.median(r[k] for r in recs if k in r) * 1e3 if any(k in r for r in recs) else float("nan")
        line = (f"phases {folder} {name}: step {med('device_step_seconds'):.3f} fwd {med('device_forward_seconds'):.3f} "
                f"bwd {med('device_backward_seconds'):.3f} exposed {med('device_exposed_communication_seconds'):.3f} "
                f"opt {med('device_optimizer_seconds'):.3f} ms (replay start {med('device_replay_start_seconds'):.3f})")
        busy = [r["device_allreduce_seconds"] for r in recs if "device_allreduce_seconds" in r]
        starts = [r["device_allreduce_start_seconds"] for r in recs if "device_allreduce_start_seconds" in r]
        if busy and starts:
            cols = list(zip(*busy)); scols = list(zip(*starts))
            line += "; buckets (start+busy ms): " + " ".join(
                f"{statistics.median(sc)*1e3:.2f}+{statistics.median(c)*1e3:.3f}" for sc, c in zip(scols, cols))
        print(line)
# Backward progress marks (DDP_CHECK_MARKS=1): each segment of backward between two convolutions'
# weight gradients, against the same segment of the 1-GPU run at the same batch (rank 0).
def marks(folder):
    path = os.path.join(out, folder, "metrics-rank0.jsonl")
    if not os.path.exists(path): path = os.path.join(out, folder, "metrics.jsonl")
    if not os.path.exists(path): return None
    recs = [json.loads(l) for l in open(path) if l.strip()]
    recs = [r for r in recs if r.get("event") == "step" and "device_gradient_ready_seconds" in r][2:]
    if not recs: return None
    names = recs[-1]["device_gradient_ready_names"]
    times = [statistics.median(r["device_gradient_ready_seconds"][i] for r in recs) * 1e3 for i in range(len(names))]
    start = statistics.median(r["device_forward_seconds"] for r in recs) * 1e3
    return names, [t - p for t, p in zip(times, [start] + times[:-1])]
for folder in sorted(os.listdir(out)):
    if not folder.startswith("speed-phases-") or folder.endswith(".txt") or "-1gpu-" in folder: continue
    batch = folder.split("-b")[1].split("-")[0]
    one, many = marks(f"speed-phases-1gpu-b{batch}"), marks(folder)
    if not one or not many or one[0] != many[0]: continue
    print(f"marks {folder} (rank 0) against 1 GPU, ms per backward segment ending at each weight gradient:")
    for name, a, b in zip(one[0], one[1], many[1]):
        print(f"  {name:28s} {a:7.3f} {b:7.3f} {b - a:+7.3f}")
    print(f"  {'total':28s} {sum(one[1]):7.3f} {sum(many[1]):7.3f} {sum(many[1]) - sum(one[1]):+7.3f}")
for folder in sys.argv[3:]:
    _, records = steps(folder)
    evals = [(r["epoch"], r.get("test_loss"), r.get("test_accuracy")) for r in records if r.get("event") == "eval"]
    print(folder, ", ".join(f"epoch {e}: loss {l:.4f} acc {a*100:.2f}%" for e, l, a in evals if l is not None))
PY
