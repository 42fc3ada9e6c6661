#!/usr/bin/env python3
"""PyTorch reference for `cohort train`: the same recipe on the same data, for
accuracy parity (run both in one call on the same machine).

ResNet-18 (CIFAR stem), CIFAR-10 from its binary layout, random crop with
4-pixel zero padding and horizontal flip, normalisation with the CIFAR-10
mean/std, SGD (momentum 0.9, optional Nesterov, weight decay), linear warmup
from 0 then constant, cosine or linear decay to 0 per step, label smoothing.
Augmentation runs on the GPU on whole batches so the data loader is not the
bottleneck; each epoch visits a fresh permutation of the 50,000 images and
keeps the last partial batch, as Cohort does.

    python3 benchmarks/pytorch_train_cifar.py --data /tmp/cifar --epochs 30 --batch-size 512 --lr 0.4 \
        --nesterov --warmup-epochs 2 --schedule linear --label-smoothing 0.1 --json out.json
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def load_split(folder, names):
    base = os.path.join(folder, "cifar-10-batches-bin")
    if not os.path.isdir(base):
        base = folder
    records = np.concatenate([np.fromfile(os.path.join(base, n), dtype=np.uint8).reshape(-1, 3073) for n in names])
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    return images, labels


def cifar_resnet18():
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def augment(images, generator):
    """Random crop 32 from the 40x40 zero-padded image and horizontal flip, per image (uint8 in, float out)."""
    n = images.shape[0]
    padded = F.pad(images.float() / 255.0, (4, 4, 4, 4))
    tops = torch.randint(0, 9, (n,), device=images.device, generator=generator)
    lefts = torch.randint(0, 9, (n,), device=images.device, generator=generator)
    rows = (tops.view(n, 1) + torch.arange(32, device=images.device).view(1, 32))  # n x 32
    cols = (lefts.view(n, 1) + torch.arange(32, device=images.device).view(1, 32))
    cropped = padded[torch.arange(n, device=images.device).view(n, 1, 1, 1), torch.arange(3, device=images.device).view(1, 3, 1, 1),
                     rows.view(n, 1, 32, 1), cols.view(n, 1, 1, 32)]
    flip = torch.rand(n, device=images.device, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(3)
    return cropped


def learning_rate(step, total, warmup, peak, schedule):
    if step < warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return peak * (1 - progress)
    return peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.4)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--nesterov", action="store_true")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--warmup-epochs", type=int, default=0)
    parser.add_argument("--schedule", choices=["constant", "cosine", "linear"], default="constant")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()

    device = torch.device("cuda")
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    train_images, train_labels = load_split(args.data, [f"data_batch_{i}.bin" for i in range(1, 6)])
    test_images, test_labels = load_split(args.data, ["test_batch.bin"])
    train_images, train_labels = train_images.to(device), train_labels.to(device)
    test_x = ((test_images.float() / 255.0 - MEAN) / STD).to(device)
    test_y = test_labels.to(device)
    mean, std = MEAN.to(device), STD.to(device)

    model = cifar_resnet18().to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                nesterov=args.nesterov, weight_decay=args.weight_decay)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    steps_per_epoch = math.ceil(50000 / args.batch_size)
    total, warmup = args.epochs * steps_per_epoch, args.warmup_epochs * steps_per_epoch
    step, history, training_seconds = 0, [], 0.0
    for epoch in range(args.epochs):
        model.train()
        train_loss_sum, train_steps = torch.zeros((), device=device), 0
        torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(50000, device=device, generator=generator)
        for first in range(0, 50000, args.batch_size):
            index = order[first:first + args.batch_size]
            x = ((augment(train_images[index], generator) - mean) / std).contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, warmup, args.lr, args.schedule)
            with autocast:
                loss = criterion(model(x), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_loss_sum += loss.detach().float()  # stays on the GPU: no sync inside the epoch
            train_steps += 1
            step += 1
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        training_seconds += seconds
        model.eval()
        correct, test_loss_sum = 0, 0.0
        with torch.no_grad(), autocast:
            for first in range(0, 10000, 1000):
                logits = model(test_x[first:first + 1000].contiguous(memory_format=torch.channels_last))
                correct += (logits.argmax(1) == test_y[first:first + 1000]).sum().item()
                test_loss_sum += F.cross_entropy(logits.float(), test_y[first:first + 1000], reduction="sum").item()
        history.append({"epoch": epoch + 1, "test_accuracy": correct / 10000, "test_loss": test_loss_sum / 10000,
                        "train_loss": (train_loss_sum / max(train_steps, 1)).item(), "seconds": seconds})
        print(f"epoch {epoch + 1}/{args.epochs}: test accuracy {100 * correct / 10000:.2f}%, {seconds:.2f} s", flush=True)
    result = {"framework": "pytorch", "version": torch.__version__, "args": vars(args), "epochs": history,
              "final_test_accuracy": history[-1]["test_accuracy"], "training_seconds": training_seconds}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
