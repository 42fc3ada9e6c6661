#!/usr/bin/env bash
# Builds kernel_trace.so on the GPU machine (it has the CUDA toolkit and CUPTI;
# this build machine has neither). Prints the library's path and the folder of
# libcupti.so for LD_LIBRARY_PATH, or says what is missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
header=$(find /usr/local/cuda*/ /usr/local/lib/python3*/ /usr/lib/python3*/ /opt -name cupti.h 2>/dev/null | head -1)
[ -z "$header" ] && { echo "kernel-trace: no cupti.h found" >&2; exit 1; }
include=$(dirname "$header")
library=$(find "$include/.." /usr/local/cuda*/ -name 'libcupti.so*' 2>/dev/null | head -1)
[ -z "$library" ] && { echo "kernel-trace: no libcupti.so found" >&2; exit 1; }
cuda_include=$(dirname "$(find /usr/local/cuda*/ -name cuda.h 2>/dev/null | head -1)")
for version in 12 11 10 9 8; do
    if gcc -O2 -shared -fPIC -DKERNEL_RECORD=CUpti_ActivityKernel$version -I"$include" -I"$cuda_include" \
        "$here/kernel_trace.c" -o /tmp/kernel_trace.so "$library" 2>/tmp/kernel-trace-build.txt; then
        echo "/tmp/kernel_trace.so $(dirname "$library") CUpti_ActivityKernel$version"
        exit 0
    fi
done
cat /tmp/kernel-trace-build.txt >&2
exit 1
