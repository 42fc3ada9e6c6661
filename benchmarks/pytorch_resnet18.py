#!/usr/bin/env python3
"""PyTorch reference for `cohort bench`: the same training step on the same data.

ResNet-18 in its CIFAR form (torchvision's resnet18 with a 3x3 stride-1 stem
and no max pool), eager mode, random data already on the device, SGD with
momentum 0.9 and weight decay 5e-4: forward, cross-entropy, backward, step.
Reports the median step time over timed steps after warm-up, as Cohort does.

    python3 benchmarks/pytorch_resnet18.py --device cpu --batch-sizes 32 128
    python3 benchmarks/pytorch_resnet18.py --device cuda --precision bf16 --channels-last --batch-sizes 32 512
"""
import argparse
import json
import platform
import statistics
import time

import torch
import torchvision


def cifar_resnet18(num_classes=10):
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batch(device, batch_size, precision, channels_last, warmup, steps, block=1):
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = cifar_resnet18().to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    criterion = torch.nn.CrossEntropyLoss()
    images = torch.randn(batch_size, 3, 32, 32, device=device).to(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    # Blocks of `block` steps between two synchronisations: with block > 1 the
    # host queues the next step's kernels while the GPU runs the current one,
    # as in a training loop that does not read the loss every step (eager
    # PyTorch launches ~300 kernels a step, so a sync per step costs it more
    # than a replayed graph). The per-step time is the block's time / block.
    durations = []
    for _ in range(max(1, steps // block)):
        start = time.perf_counter()
        for _ in range(block):
            step()
        synchronize(device)
        durations.append((time.perf_counter() - start) / block)
    median = statistics.median(durations)
    # The caching allocator's high-water mark over this batch size's model, warm-up and timed steps.
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "framework": "pytorch", "version": torch.__version__, "device": str(device), "precision": precision,
        "channels_last": channels_last, "batch_size": batch_size, "warmup_steps": warmup, "timed_steps": steps,
        "steps_per_sync": block, "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "median_step_seconds": median, "images_per_second": batch_size / median,
        "epoch_seconds": 50000 / batch_size * median, "threads": torch.get_num_threads(),
        "peak_memory_bytes": peak,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    parser.add_argument("--steps-per-sync", type=int, default=1,
                        help="time blocks of this many steps between synchronisations (1: every step, as cohort bench)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="torch.backends.cudnn.benchmark = True: cuDNN algorithms chosen by timing, as Cohort does")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)
    results = []
    print(f"pytorch {torch.__version__} on {device} ({platform.processor() or platform.machine()}), "
          f"{args.precision}{', channels_last' if args.channels_last else ''}, {torch.get_num_threads()} threads")
    print("batch  step (s)  images/s  epoch (s)")
    for batch_size in args.batch_sizes:
        result = time_batch(device, batch_size, args.precision, args.channels_last, args.warmup, args.steps,
                            args.steps_per_sync)
        results.append(result)
        print(f"{batch_size:5d}  {result['median_step_seconds']:8.3f}  {result['images_per_second']:8.1f}  "
              f"{result['epoch_seconds']:9.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
