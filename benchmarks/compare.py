#!/usr/bin/env python3
"""Prints Cohort's benchmark figures beside PyTorch's from the same run, with ratios.

    python3 benchmarks/compare.py cohort.json pytorch.json [--markdown]
"""
import json
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in sys.argv
    cohort = {r["batchSize"]: r for r in json.load(open(args[0]))}
    pytorch = {r["batch_size"]: r for r in json.load(open(args[1]))}
    rows = []
    for batch in sorted(set(cohort) & set(pytorch)):
        ours, theirs = cohort[batch]["imagesPerSecond"], pytorch[batch]["images_per_second"]
        rows.append((batch, ours, theirs, ours / theirs))
    if markdown:
        print("| batch | Cohort images/s | PyTorch images/s | Cohort / PyTorch |")
        print("| ---: | ---: | ---: | ---: |")
        for batch, ours, theirs, ratio in rows:
            print(f"| {batch} | {ours:.1f} | {theirs:.1f} | {ratio:.2f}x |")
    else:
        print("batch  cohort img/s  pytorch img/s  ratio")
        for batch, ours, theirs, ratio in rows:
            print(f"{batch:5d}  {ours:12.1f}  {theirs:13.1f}  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
