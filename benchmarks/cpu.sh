#!/usr/bin/env bash
# ResNet-18 CIFAR training throughput on the CPU: Cohort and PyTorch in the same run,
# on the same machine, same batch sizes, same step (forward, loss, backward, SGD).
# Needs PyTorch (pip install torch torchvision). Results go to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
stamp="$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD)"
swift build -c release
.build/release/cohort bench --batch-sizes 32 128 --warmup 2 --steps 7 --json "$out/cpu-cohort-$stamp.json"
python3 benchmarks/pytorch_resnet18.py --device cpu --batch-sizes 32 128 --warmup 2 --steps 7 --json "$out/cpu-pytorch-$stamp.json"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date and commit: $stamp"
python3 benchmarks/compare.py "$out/cpu-cohort-$stamp.json" "$out/cpu-pytorch-$stamp.json" --markdown
