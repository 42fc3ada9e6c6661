#!/usr/bin/env python3
"""PyTorch reference for the experiment suite's Q2: ResNet-18 (CIFAR form)
training steps on several GPUs, the way PyTorch users run them.

- DistributedDataParallel, one process per GPU, under torchrun (default
  buckets: 25 MB, gradients all-reduced during backward through NCCL):
      python3 -m torch.distributed.run --standalone --nproc-per-node 4 benchmarks/pytorch_ddp.py --gpus 4 --json ddp.json
- nn.DataParallel, one process driving every GPU (the batch is split across
  them each step, the model replicated from GPU 0):
      python3 benchmarks/pytorch_ddp.py --dataparallel --gpus 4 --json dp.json
- One GPU (the weak-scaling baseline): the plain model, no wrapper:
      python3 benchmarks/pytorch_ddp.py --gpus 1 --json single.json

Each per-GPU batch in --batch-sizes is timed as in pytorch_resnet18.py:
random images and labels already on the GPU (no data loading), SGD with
momentum 0.9 and weight decay 5e-4, bf16 autocast with channels_last when
asked; warm-up steps, then each timed step ends with a synchronisation and
the median step is kept (under DDP, every rank's steps end together; rank
0's median is reported). An epoch is 50,000 images at the global batch
(GPUs x per-GPU batch). --device cpu (gloo instead of NCCL) runs the same
code on the CPU at tiny sizes, to check the script without a GPU.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torchvision

IMAGES_PER_EPOCH = 50_000


def cifar_resnet18(num_classes=10):
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_batch(wrap, device, per_gpu_batch, global_batch, args):
    """Median seconds of one training step at this batch (the input is the batch the wrapped model sees)."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = wrap(cifar_resnet18().to(device).to(memory_format=memory_format))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    criterion = torch.nn.CrossEntropyLoss()
    local = global_batch if args.dataparallel else per_gpu_batch
    images = torch.randn(local, 3, 32, 32, device=device).to(memory_format=memory_format)
    labels = torch.randint(0, 10, (local,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    synchronize(device)
    # Blocks of --steps-per-sync steps between synchronisations (the host
    # queues ahead, as a training loop that reads the loss only when it logs).
    durations = []
    block = max(1, args.steps_per_sync)
    for _ in range(max(1, args.steps // block)):
        start = time.perf_counter()
        for _ in range(block):
            step()
        synchronize(device)
        durations.append((time.perf_counter() - start) / block)
    del model, optimizer, images, labels
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(durations)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=1, help="GPUs (under torchrun: must equal --nproc-per-node)")
    parser.add_argument("--dataparallel", action="store_true", help="nn.DataParallel in this one process")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: gloo, to check the script")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512, 1024], help="per GPU")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--steps-per-sync", type=int, default=1, help="time blocks of this many steps between syncs")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    parser.add_argument("--json", help="rank 0 writes the results here")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark

    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if distributed and args.dataparallel:
        parser.error("--dataparallel runs in one process; start it without torchrun")
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if distributed else (0, 1)
    if distributed and world != args.gpus:
        parser.error(f"--gpus {args.gpus} but torchrun started {world} processes")
    if not distributed and not args.dataparallel and args.gpus > 1:
        parser.error("several GPUs: run under torchrun (DDP) or add --dataparallel")

    if args.device == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        if args.dataparallel and torch.cuda.device_count() < args.gpus:
            parser.error(f"--gpus {args.gpus} but CUDA sees {torch.cuda.device_count()}")
    else:
        device = torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    if distributed and world > 1:
        mode = "ddp"

        def wrap(model):
            return torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
    elif args.dataparallel and args.gpus > 1:
        mode = "dataparallel"

        def wrap(model):
            # On the CPU DataParallel runs the module as it is (no GPUs to scatter to).
            return torch.nn.DataParallel(model, device_ids=list(range(args.gpus)) if device.type == "cuda" else None)
    else:
        mode = "single"

        def wrap(model):
            return model

    results = []
    if rank == 0:
        print(f"pytorch {torch.__version__} {mode} on {args.gpus} {device.type} device(s), {args.precision}"
              f"{', channels_last' if args.channels_last else ''}; {args.warmup} warm-up + {args.steps} timed steps")
        print("per-GPU batch  global batch  step (s)  images/s  epoch (s)", flush=True)
    for per_gpu_batch in args.batch_sizes:
        global_batch = per_gpu_batch * args.gpus
        median = time_batch(wrap, device, per_gpu_batch, global_batch, args)
        row = {"per_gpu_batch": per_gpu_batch, "global_batch": global_batch, "median_step_seconds": median,
               "images_per_second": global_batch / median, "epoch_seconds": IMAGES_PER_EPOCH / global_batch * median}
        results.append(row)
        if rank == 0:
            print(f"{per_gpu_batch:13d}  {global_batch:12d}  {median:8.4f}  {row['images_per_second']:8.0f}  "
                  f"{row['epoch_seconds']:9.3f}", flush=True)
    if rank == 0 and args.json:
        with open(args.json, "w") as handle:
            json.dump({"framework": "pytorch", "version": torch.__version__, "mode": mode, "gpus": args.gpus,
                       "device": device.type, "precision": args.precision, "channels_last": args.channels_last,
                       "warmup_steps": args.warmup, "timed_steps": args.steps, "results": results}, handle, indent=2)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
