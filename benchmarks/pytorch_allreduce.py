#!/usr/bin/env python3
"""The all-reduce sweep through PyTorch's NCCL process group, the reference for
`cohort bench allreduce --device cuda` (same sizes, sum of float32, median of
timed repetitions after warm-up; algbw and busbw as nccl-tests define them).

    torchrun --nproc-per-node 2 benchmarks/pytorch_allreduce.py --max-bytes 1073741824 --json out.json
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-bytes", type=int, default=1 << 10)
    parser.add_argument("--max-bytes", type=int, default=1 << 30)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl")
    buffer = torch.ones(args.max_bytes // 4, device="cuda")
    rows, size = [], args.min_bytes
    while size <= args.max_bytes:
        message = buffer[: size // 4]
        for _ in range(3):
            dist.all_reduce(message)
        torch.cuda.synchronize()
        dist.barrier()
        times = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            dist.all_reduce(message)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        algbw = size / seconds / 1e9
        rows.append({"communicator": "pytorch nccl", "ranks": world, "bytes": size, "seconds": seconds,
                     "algbwGBps": algbw, "busbwGBps": algbw * 2 * (world - 1) / world})
        size *= args.factor
    if rank == 0:
        print(f"pytorch {torch.__version__} all-reduce on {world} ranks (nccl {torch.cuda.nccl.version()})")
        print("       bytes     time (us)  algbw (GB/s)  busbw (GB/s)")
        for row in rows:
            print(f"{row['bytes']:12d}  {row['seconds'] * 1e6:12.1f}  {row['algbwGBps']:12.3f}  {row['busbwGBps']:12.3f}")
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(rows, handle, indent=2)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
