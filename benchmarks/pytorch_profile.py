#!/usr/bin/env python3
"""Where PyTorch's ResNet-18 training step spends its GPU time, by kernel kind.

The step of benchmarks/pytorch_resnet18.py (CIFAR ResNet-18, eager, bf16
autocast + channels_last by default, synthetic data on the GPU) run under
torch.profiler for a few steps after warm-up; every CUDA kernel's device time
is summed into a category by its name (convolution forward / data gradient /
weight gradient, batch norm, elementwise, optimizer, other), so Cohort's
`cohort bench --profile-ops` and `cohort bench convs` can be read against it.

    python3 benchmarks/pytorch_profile.py --batch-size 512 --json profile.json
"""
import argparse
import collections
import json
import re

import torch

from pytorch_resnet18 import cifar_resnet18

CATEGORIES = [
    ("conv weight gradient", re.compile(r"wgrad|dgrad_filter|bwd_filter|convolve_weight|wgrad_engine", re.I)),
    ("conv data gradient", re.compile(r"dgrad|bwd_data|convolve_data|deconv", re.I)),
    ("conv forward", re.compile(r"fprop|implicit_gemm|conv|xmma|cutlass|sm90_|sm80_|gemm", re.I)),
    ("batch norm", re.compile(r"batch_norm|batchnorm|bn_|welford|nhwc_batch|bn", re.I)),
    ("optimizer", re.compile(r"multi_tensor|foreach|sgd|fused_sgd", re.I)),
    ("elementwise", re.compile(r"elementwise|vectorized|relu|threshold|add|copy|fill|cat", re.I)),
]


def category(name):
    for label, pattern in CATEGORIES:
        if pattern.search(name):
            return label
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = cifar_resnet18().to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    criterion = torch.nn.CrossEntropyLoss()
    images = torch.randn(args.batch_size, 3, 32, 32, device=device).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
        start.record()
        for _ in range(args.steps):
            step()
        end.record()
        torch.cuda.synchronize()
    wall_ms = start.elapsed_time(end) / args.steps
    by_category = collections.defaultdict(float)
    by_kernel = collections.defaultdict(lambda: [0.0, 0])
    for event in profiler.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        micros = event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
        by_category[category(event.name)] += micros / 1000 / args.steps
        by_kernel[event.name][0] += micros / 1000 / args.steps
        by_kernel[event.name][1] += 1
    kernel_ms = sum(by_category.values())
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}, batch {args.batch_size} {args.precision}: "
          f"{wall_ms:.3f} ms per step (events), {kernel_ms:.3f} ms of kernels")
    for label, ms in sorted(by_category.items(), key=lambda item: -item[1]):
        print(f"  {label:24s} {ms:8.3f} ms  {100 * ms / kernel_ms:5.1f}%")
    print("  costliest kernels:")
    for name, (ms, calls) in sorted(by_kernel.items(), key=lambda item: -item[1][0])[:15]:
        print(f"    {ms:7.3f} ms x{calls // args.steps:<3d} {name[:110]}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"framework": "pytorch", "version": torch.__version__, "device": torch.cuda.get_device_name(),
                       "batch_size": args.batch_size, "precision": args.precision, "step_ms": wall_ms,
                       "kernel_ms": kernel_ms, "categories_ms": by_category,
                       "kernels": [{"name": n, "ms": v[0], "calls": v[1] // args.steps}
                                   for n, v in sorted(by_kernel.items(), key=lambda item: -item[1][0])]},
                      file, indent=1)


if __name__ == "__main__":
    main()
