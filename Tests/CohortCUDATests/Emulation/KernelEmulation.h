// Lets the NVRTC kernel modules compile as host C++ (KernelEmulationTests):
// one host thread per CUDA thread, blocks run one at a time, so `__shared__`
// variables can be function statics and `__syncthreads` a std::barrier over
// the block's threads. The test replaces the prelude's PTX bf16 rounding
// (cvt.rn.bf16.f32) with host_float_to_bf16. No warp-level intrinsics are
// emulated: a module that uses them does not compile here.
#pragma once
#include <cstring>
#include <cmath>
#include <barrier>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
extern std::barrier<>* emulatedBarrier;
#define __device__
#define __global__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
inline void __syncthreads() { emulatedBarrier->arrive_and_wait(); }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
using std::sqrt;
// cvt.rn.bf16.f32: round to nearest even; NaN -> 0x7FFF.
inline unsigned short host_float_to_bf16(float f) {
    unsigned u; std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
