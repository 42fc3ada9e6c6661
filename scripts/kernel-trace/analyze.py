#!/usr/bin/env python3
"""Compares the kernels of replayed training steps between runs traced by
kernel_trace.so: where an N-GPU step's extra time sits (kernel durations or
the gaps between them, forward, backward or optimizer).

    analyze.py BASE_CSV OTHER_CSV... (one process's trace each; the device-0 rank)

A step is one graph launch (its kernels share a correlation id) with more
than 50 kernels, joined by the optimizer's launch after it where the step was
captured in parts (host-launched all-reduces); the first 20 are warm-up. The communication branch is told
from the compute chain by its kernels' names (`split`).
Forward ends with the loss kernel (softmax_xent), the optimizer starts at the
first kernel after the last weight-gradient transpose (krsc_*)."""
import csv, statistics, sys
from collections import defaultdict

def steps_of(path):
    launches = defaultdict(list)
    with open(path, newline="", errors="replace") as f:
        for row in csv.DictReader(f):
            if row["graph"] == "0": continue
            launches[int(row["correlation"])].append(row)
    # A step captured in parts (`--allreduce-launch host*`: forward and backward, then the optimizer's
    # graph of a few kernels) is one launch of more than 50 kernels and the small launches after it.
    ordered = sorted((sorted(v, key=lambda r: int(r["start"])) for v in launches.values()), key=lambda v: int(v[0]["start"]))
    steps = []
    for kernels in ordered:
        if len(kernels) > 50: steps.append(kernels)
        elif steps and any("sgd" in r["name"] or "lars" in r["name"] for r in kernels): steps[-1] = steps[-1] + kernels
    # Training steps only (evaluation replays have no loss backward or weight gradients).
    steps = [s for s in steps if any("xent" in r["name"] for r in s) and any("to_oihw" in r["name"] for r in s)]
    return steps[20:]

def device0_trace(path):
    """A run folder's trace of the process on device 0 (a file is taken as it is)."""
    import glob, os
    if not os.path.isdir(path): return path
    for candidate in sorted(glob.glob(os.path.join(path, "kernels-*.csv"))):
        with open(candidate, newline="", errors="replace") as f:
            first = next(csv.DictReader(f), None)
        if first and first["device"] == "0": return candidate
    return path

def split(step):
    """The compute chain and the communication branch. CUDA runs a graph's
    branches on streams of its own choosing (from the first fork on, the
    chain itself moves to another stream), so the branch is told by its
    kernels: NCCL's, and the reducer's conversions between the loss and the
    optimizer (convert_f32_to_bf16 into the wire buffer, convert_bf16_to_f32*
    out of it)."""
    names = [r["name"] for r in step]
    loss = next((i for i, n in enumerate(names) if "xent_backward" in n), 0)
    update = next((i for i, n in enumerate(names) if i > loss and ("sgd" in n or "lars" in n)), len(step))
    def in_branch(i):
        n = names[i]
        return "nccl" in n.lower() or n.startswith("convert_bf16_to_f32") or (loss < i < update and n == "convert_f32_to_bf16")
    chain = [r for i, r in enumerate(step) if not in_branch(i)]
    branch = [r for i, r in enumerate(step) if in_branch(i)]
    return chain, branch

def segments(chain):
    names = [r["name"] for r in chain]
    loss = next(i for i, n in enumerate(names) if "xent" in n)
    last_wgrad = max(i for i, n in enumerate(names) if "to_oihw" in n)
    return {"forward": (0, loss + 1), "backward": (loss + 1, last_wgrad + 1), "optimizer": (last_wgrad + 1, len(chain))}

def summary(path):
    steps = steps_of(path)
    rows = []
    for step in steps:
        chain, branch = split(step)
        seg = segments(chain)
        t = lambda r: (int(r["start"]), int(r["end"]))
        entry = {"span": (int(step[-1]["end"]) - int(step[0]["start"])) / 1e6, "branch": len(branch), "chain": len(chain),
                 "durations": [], "gaps": []}
        previous_end = None
        for r in chain:
            s, e = t(r)
            entry["durations"].append((e - s) / 1e6)
            entry["gaps"].append(0.0 if previous_end is None else (s - previous_end) / 1e6)
            previous_end = e
        for name, (a, b) in seg.items():
            entry[name + "_kernels"] = sum(entry["durations"][a:b])
            entry[name + "_gaps"] = sum(entry["gaps"][a + 1:b]) if b > a else 0
            entry[name + "_wall"] = (int(chain[b - 1]["end"]) - int(chain[a]["start"])) / 1e6 if b > a else 0
        entry["names"] = [r["name"][:60] for r in chain]
        entry["branch_names"] = sorted({r["name"][:50] for r in branch})
        entry["branch_busy"] = sum((int(r["end"]) - int(r["start"])) / 1e6 for r in branch)
        rows.append(entry)
    return rows

def med(rows, key): return statistics.median(r[key] for r in rows)

runs = [(p, summary(device0_trace(p))) for p in sys.argv[1:]]
print(f"{'run':<48} {'steps':>5} {'span':>6} {'chain':>5} {'branch':>6}   fwd k+gaps=wall   bwd k+gaps=wall   opt k+gaps=wall  (ms, medians)")
for p, rows in runs:
    if not rows: print(p, "no steps"); continue
    cells = " ".join(f"{med(rows, s + '_kernels'):6.3f}+{med(rows, s + '_gaps'):5.3f}={med(rows, s + '_wall'):6.3f}"
                     for s in ("forward", "backward", "optimizer"))
    print(f"{p[-48:]:<48} {len(rows):5d} {med(rows, 'span'):6.3f} {rows[0]['chain']:5d} {rows[0]['branch']:6d}  {cells}"
          f"  branch busy {med(rows, 'branch_busy'):.3f}")
    if rows[0]["branch_names"]: print("    branch kernels:", ", ".join(rows[0]["branch_names"]))
base_path, base = runs[0]
for p, rows in runs[1:]:
    if not rows or not base or rows[0]["names"] != base[0]["names"]:
        print(f"{p}: compute chain differs from the base's ({len(rows[0]['names']) if rows else 0} vs {len(base[0]['names'])} kernels)")
        continue
    n = len(base[0]["names"])
    dd = [statistics.median(r["durations"][i] for r in rows) - statistics.median(r["durations"][i] for r in base) for i in range(n)]
    dg = [statistics.median(r["gaps"][i] for r in rows) - statistics.median(r["gaps"][i] for r in base) for i in range(n)]
    print(f"\n{p} against {base_path}: chain kernels' duration {sum(dd):+.4f} ms, gaps {sum(dg):+.4f} ms; largest changes:")
    for i in sorted(range(n), key=lambda i: -abs(dd[i]) - abs(dg[i]))[:25]:
        print(f"  #{i:3d} {base[0]['names'][i]:<60} dur {statistics.median(r['durations'][i] for r in base)*1e3:7.1f}us {dd[i]*1e3:+6.1f}us  gap {dg[i]*1e3:+6.1f}us")
