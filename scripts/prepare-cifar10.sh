#!/usr/bin/env bash
# Prints the path of a folder holding cifar-10-batches-bin, converting the shared
# JPEG-derived copy (../shared/datasets/cifar10) into .data/ once if needed.
# Prints nothing (and exits 0) when no copy is available.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/.data/cifar10"
if [ -f "$target/cifar-10-batches-bin/test_batch.bin" ]; then echo "$target"; exit 0; fi
shared="$root/../shared/datasets/cifar10"
if [ -f "$shared/cifar-10-jpeg.tar.xz" ] && python3 -c "import numpy, PIL" 2>/dev/null; then
    mkdir -p "$target"
    python3 "$shared/jpeg_to_cifar_binary.py" "$shared/cifar-10-jpeg.tar.xz" "$target" >&2
    echo "$target"
fi
