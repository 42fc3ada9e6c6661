#!/usr/bin/env python3
"""Loads a Cohort checkpoint into torchvision's ResNet-18 (CIFAR stem) and
checks that PyTorch gives the same logits as Cohort on the same test images.

    cohort eval CKPT --data DIR --limit 256 --logits-out cohort-logits.safetensors
    python3 benchmarks/pytorch_checkpoint_check.py CKPT cohort-logits.safetensors DIR [--device cuda]

The images are CIFAR-10's test set in its binary layout, normalised with the
same mean and std Cohort uses, fed NCHW (Cohort's tensors are NHWC). Both
sides run in evaluation mode (running batch-norm statistics) in float32;
PyTorch's TF32 is turned off so the comparison is fp32 against fp32.
Passes when the normwise relative difference of the logits is under 1e-4.
Prints one JSON line with the result; exit status 1 on failure.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def cifar_resnet18():
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def test_images(folder, count):
    path = os.path.join(folder, "cifar-10-batches-bin", "test_batch.bin")
    if not os.path.exists(path):
        path = os.path.join(folder, "test_batch.bin")
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)[:count]
    labels = records[:, 0].astype(np.int64)
    images = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0   # planes: NCHW
    images = (images - MEAN[None, :, None, None]) / STD[None, :, None, None]
    return torch.from_numpy(images), torch.from_numpy(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("cohort_logits")
    parser.add_argument("data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    state = load_file(args.checkpoint)
    model = cifar_resnet18()
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("optimizer.")}, strict=True)
    model = model.to(args.device).eval()

    cohort = load_file(args.cohort_logits)
    cohort_logits = cohort["logits"].double()
    images, labels = test_images(args.data, cohort_logits.shape[0])
    assert torch.equal(labels.int(), cohort["labels"]), "the logits file is for other images"
    with torch.no_grad():
        logits = model(images.to(args.device)).double().cpu()
    difference = (logits - cohort_logits).norm() / logits.norm()
    worst = ((logits - cohort_logits).abs().max() / logits.abs().max()).item()
    result = {
        "images": int(logits.shape[0]), "normwise_relative_difference": difference.item(),
        "max_relative_difference": worst, "tolerance": args.tolerance,
        "same_predictions": float((logits.argmax(1) == cohort_logits.argmax(1)).double().mean()),
        "pytorch": torch.__version__, "device": args.device, "passed": bool(difference.item() < args.tolerance),
    }
    print(json.dumps(result))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
