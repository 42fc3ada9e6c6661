#!/usr/bin/env bash
# Builds the cohort binary with the Swift runtime linked in statically and
# gathers what a GPU machine needs into .gpu/ (ignored by git; it travels with
# a GPU run): the binary (xz-compressed), CIFAR-10 as JPEGs with its converter, and the
# PyTorch reference benchmark. Then `bash scripts/gpu-run.sh` there.
#
# oneDNN, CUDA, cuDNN, NCCL are reached through dlopen, so the binary starts on
# a machine without them; this script fails if any of them became NEEDED.
#
#   scripts/build-static.sh            # shared data from ../shared (or COHORT_SHARED=<dir>)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The shared folder sits beside the main checkout; a git worktree lives one level deeper.
shared="${COHORT_SHARED:-}"
if [ -z "$shared" ]; then
    for candidate in "$root/../shared" "$root/../../shared"; do
        if [ -d "$candidate/datasets/cifar10" ]; then shared="$(cd "$candidate" && pwd)"; break; fi
    done
fi
cifar="$shared/datasets/cifar10"
if [ -z "$shared" ] || [ ! -f "$cifar/cifar-10-jpeg.tar.xz" ]; then
    echo "build-static: no shared/datasets/cifar10/cifar-10-jpeg.tar.xz beside the checkout; set COHORT_SHARED=<shared dir>" >&2
    exit 1
fi

# Foundation's URLSession needs libcurl, which has no static build here: link
# stand-ins that stop with a message (see scripts/static-curl-stubs.c).
# They go in as libcurl.a, since Foundation asks the linker for -lcurl.
mkdir -p .build-static/curl-stubs
clang -c -O2 scripts/static-curl-stubs.c -o .build-static/curl-stubs/curl-stubs.o
rm -f .build-static/curl-stubs/libcurl.a
ar rcs .build-static/curl-stubs/libcurl.a .build-static/curl-stubs/curl-stubs.o
# Always a clean build (the fetched packages stay): an incremental release build once kept
# a module compiled against the Backend protocol before a requirement was added, and the
# binary called the wrong witness (2026-11-28, docs/results/2026-11-28-widening); deleting
# only Cohort's own build folders leaves SwiftPM's build plan pointing at files that are gone.
# About four minutes on two cores.
rm -rf .build-static/release .build-static/"$(uname -m)"-unknown-linux-gnu
swift build -c release --static-swift-stdlib --scratch-path .build-static --product cohort \
    -Xlinker -L"$root/.build-static/curl-stubs"

mkdir -p .gpu
# Stripped, the binary is still ~58 MB, 34 of them ICU's data (Foundation's
# internationalisation), too much beside the 18.5 MB data set: it travels
# xz-compressed and gpu-run.sh unpacks it to .gpu/cohort.
rm -f .gpu/cohort .gpu/cohort.xz
install -m 755 .build-static/release/cohort .gpu/cohort.tmp
strip --strip-all .gpu/cohort.tmp
xz -T0 -6 -c .gpu/cohort.tmp > .gpu/cohort.xz
install -m 644 "$cifar/cifar-10-jpeg.tar.xz" .gpu/cifar-10-jpeg.tar.xz
install -m 755 "$cifar/jpeg_to_cifar_binary.py" .gpu/jpeg_to_cifar_binary.py
install -m 755 benchmarks/pytorch_resnet18.py .gpu/pytorch_resnet18.py
{   # DEVICE.md: record the commit with every figure.
    echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $(swift --version 2>/dev/null | head -1)"
} > .gpu/build-info.txt

# Nothing loaded with dlopen may appear as NEEDED: the binary would not start without it.
needed="$(readelf -d .gpu/cohort.tmp | awk '/NEEDED/ { gsub(/[][]/, "", $NF); print $NF }')"
echo "NEEDED: $(echo $needed)"
if echo "$needed" | grep -Eiq 'cuda|cudnn|cublas|nvrtc|nccl|dnnl|mkldnn|mpi|swift'; then
    echo "build-static: the binary links a library that must be dlopen'd (or the Swift runtime)" >&2
    exit 1
fi

rm .gpu/cohort.tmp
limit=$((64 * 1024 * 1024))
total=$(du -cb .gpu/* | awk 'END { print $1 }')
du -h .gpu/*
awk -v bytes="$total" 'BEGIN { printf "total %.1f MiB in .gpu/ (a GPU run carries 64 MiB with the working tree)\n", bytes / 1048576 }'
if [ "$total" -gt $((limit * 3 / 4)) ]; then
    echo "build-static: .gpu/ is over 48 MiB; a run carries 64 MiB with the working tree" >&2
    exit 1
fi
