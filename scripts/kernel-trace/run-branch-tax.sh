#!/usr/bin/env bash
# On the GPU machine: builds branch_tax.cu and runs it plain, then under the
# kernel tracer (kernel_trace.so, build.sh) to see each setting's gaps
# between the chain's kernels. (CUDA_DEVICE_MAX_CONNECTIONS=1 deadlocks the
# blocked and spinning settings: one hardware queue serialises the streams.)
cd "$(dirname "$0")"
nvcc -O2 -arch=sm_90 branch_tax.cu -lcuda -o /tmp/branch_tax || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
/tmp/branch_tax
read so libdir version < <(bash build.sh) || exit 1
mkdir -p /tmp/branch-trace && rm -f /tmp/branch-trace/*
KERNEL_TRACE_DIR=/tmp/branch-trace CUDA_INJECTION64_PATH=$so LD_LIBRARY_PATH=$libdir /tmp/branch_tax > /dev/null
python3 - /tmp/branch-trace/kernels-*.csv <<'PY'
import csv, statistics, sys
from collections import defaultdict
launches = defaultdict(list)
for row in csv.DictReader(open(sys.argv[1], errors="replace")):
    if row["graph"] != "0" and "work" in row["name"]: launches[int(row["correlation"])].append((int(row["start"]), int(row["end"])))
# distsplit's two graphs (120 and 180 kernels) count as one step: a launch of 120 joins the next one.
merged, pending = [], None
for k, v in sorted(launches.items()):
    if len(v) == 120: pending = v; continue
    if pending is not None and len(v) == 180: v = pending + v
    pending = None
    merged.append(v)
steps = [sorted(v) for v in merged if len(v) >= 300]
names = "single empty branch early blocked spinning twograph extevent memops sixforks sixlow memsets memfork memkern distinct distfork distsplit distmem extnojoin extjoin".split()
for v, name in enumerate(names):
    block = steps[(len(names) + v) * 220 + 20:(len(names) + v + 1) * 220]   # round 2, after warm-up
    gaps = [statistics.median(s[i][0] - s[i - 1][1] for s in block) for i in range(1, 300)]
    durations = [statistics.median(s[i][1] - s[i][0] for s in block) for i in range(300)]
    print(f"traced {name:<9} chain kernel {statistics.median(durations):6.0f} ns, gap median {statistics.median(gaps):5.0f} ns, "
          f"gaps before kernel 130 {sum(gaps[:129]) / 129:5.0f} ns, after {sum(gaps[129:]) / len(gaps[129:]):5.0f} ns")
PY
