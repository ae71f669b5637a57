// Epilogue and window-copy kernels for the library-backed kernels (see tp/library_epilogues.h for the math).
#include <cstdint>

#include "activation.cuh"
#include "common.cuh"
#include "tp/library_epilogues.h"

namespace tp {
namespace lib {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 8;

template <typename T>
__device__ __forceinline__ float load(const T* p, int64_t i) {
  return k::to_float(p[i]);
}

template <typename T>
__device__ __forceinline__ void store(T* p, int64_t i, float v) {
  p[i] = k::from_float<T>(v);
}

template <typename T>
__global__ void epilogue_kernel(T* y, int64_t total, int64_t rows, int64_t cols, const T* add, int64_t add_sb,
                                int64_t add_sr, int64_t add_sc, float add_scale, const T* residual,
                                bool residual_after_act, int act, float alpha, float beta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = load(y, i);
    if (add != nullptr) {
      const int64_t c = i % cols;
      const int64_t rest = i / cols;
      const int64_t r = rest % rows;
      const int64_t b = rest / rows;
      v += add_scale * load(add, b * add_sb + r * add_sr + c * add_sc);
    }
    if (residual != nullptr && !residual_after_act) v += load(residual, i);
    v = activate(v, act, alpha, beta);
    if (residual != nullptr && residual_after_act) v += load(residual, i);
    store(y, i, v);
  }
}

// The same math on 16 bytes per thread (V elements of one row: cols % V == 0) with 32-bit indices: y, residual and
// (when present) add's rows must be 16-byte aligned with add_sc == 1. This is the bandwidth-bound pass behind
// cuBLASLt GEMMs whose activation we apply ourselves (erf GELU in float32, for example).
template <typename T, int V>
__global__ void __launch_bounds__(kThreads) epilogue_vec_kernel(T* __restrict__ y, uint32_t groups, uint32_t rows,
                                                                uint32_t cols, const T* add, int64_t add_sb,
                                                                int64_t add_sr, float add_scale,
                                                                const T* __restrict__ residual,
                                                                bool residual_after_act, int act, float alpha,
                                                                float beta) {
  using Pack = uint4;
  for (uint32_t g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const uint32_t i = g * V;
    Pack yp = reinterpret_cast<const Pack*>(y)[g];
    const T* yv = reinterpret_cast<const T*>(&yp);
    float v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = k::to_float(yv[j]);
    if (add != nullptr) {
      const uint32_t c = i % cols, rest = i / cols;
      const T* a = add + static_cast<int64_t>(rest / rows) * add_sb + static_cast<int64_t>(rest % rows) * add_sr + c;
      const Pack ap = *reinterpret_cast<const Pack*>(a);
      const T* av = reinterpret_cast<const T*>(&ap);
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] += add_scale * k::to_float(av[j]);
    }
    float r[V];
    if (residual != nullptr) {
      const Pack rp = reinterpret_cast<const Pack*>(residual)[g];
      const T* rv = reinterpret_cast<const T*>(&rp);
#pragma unroll
      for (int j = 0; j < V; ++j) r[j] = k::to_float(rv[j]);
    }
    if (residual != nullptr && !residual_after_act) {
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] += r[j];
    }
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = activate(v[j], act, alpha, beta);
    if (residual != nullptr && residual_after_act) {  // a CSP bottleneck's shortcut: act(conv + bias) + r
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] += r[j];
    }
    Pack op;
    T* ov = reinterpret_cast<T*>(&op);
#pragma unroll
    for (int j = 0; j < V; ++j) ov[j] = k::from_float<T>(v[j]);
    reinterpret_cast<Pack*>(y)[g] = op;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

struct Dims3 {
  int64_t v[3];
};

template <typename T>
__global__ void window_copy_kernel(const T* in, T* out, int64_t total, int nsp, int64_t channels, Dims3 in_dims,
                                   Dims3 out_dims, Dims3 shift, const T* bias) {
  int64_t in_plane = 1, out_plane = 1;
  for (int d = 0; d < nsp; ++d) {
    in_plane *= in_dims.v[d];
    out_plane *= out_dims.v[d];
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i % out_plane;
    const int64_t nc = i / out_plane;
    int64_t src = 0;
    bool inside = true;
    int64_t stride = 1;
    for (int d = nsp - 1; d >= 0; --d) {
      const int64_t o = rest % out_dims.v[d];
      rest /= out_dims.v[d];
      const int64_t j = o + shift.v[d];
      if (j < 0 || j >= in_dims.v[d]) inside = false;
      src += j * stride;
      stride *= in_dims.v[d];
    }
    float v = inside ? load(in, nc * in_plane + src) : 0.f;
    if (bias != nullptr) v += load(bias, nc % channels);
    store(out, i, v);
  }
}

unsigned grid_for(int64_t total) {
  int64_t blocks = (total + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

}  // namespace

cudaError_t launch_epilogue(const EpilogueArgs& a, cudaStream_t stream) {
  const int64_t total = a.batch * a.rows * a.cols;
  if (total <= 0) return cudaSuccess;
  if (a.rows <= 0 || a.cols <= 0) return cudaErrorInvalidValue;
  const bool ok = k::dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = 16 / sizeof(T);
    const bool add_ok = a.add == nullptr ||
                        (a.add_sc == 1 && aligned16(a.add) && a.add_sb % V == 0 && a.add_sr % V == 0);
    if (total < (int64_t{1} << 31) && a.cols % V == 0 && aligned16(a.y) && add_ok &&
        (a.residual == nullptr || aligned16(a.residual))) {
      const int64_t groups = total / V;
      epilogue_vec_kernel<T, V><<<grid_for(groups), kThreads, 0, stream>>>(
          static_cast<T*>(a.y), static_cast<uint32_t>(groups), static_cast<uint32_t>(a.rows),
          static_cast<uint32_t>(a.cols), static_cast<const T*>(a.add), a.add_sb, a.add_sr, a.add_scale,
          static_cast<const T*>(a.residual), a.residual_after_act, a.act, a.act_alpha, a.act_beta);
      return;
    }
    epilogue_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<T*>(a.y), total, a.rows, a.cols, static_cast<const T*>(a.add), a.add_sb, a.add_sr, a.add_sc,
        a.add_scale, static_cast<const T*>(a.residual), a.residual_after_act, a.act, a.act_alpha, a.act_beta);
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

cudaError_t launch_window_copy(const WindowCopyArgs& a, cudaStream_t stream) {
  if (a.nsp < 1 || a.nsp > 3) return cudaErrorInvalidValue;
  int64_t total = a.n * a.c;
  Dims3 in_dims{}, out_dims{}, shift{};
  for (int d = 0; d < 3; ++d) {
    in_dims.v[d] = d < a.nsp ? a.in_dims[d] : 1;
    out_dims.v[d] = d < a.nsp ? a.out_dims[d] : 1;
    shift.v[d] = d < a.nsp ? a.shift[d] : 0;
  }
  for (int d = 0; d < a.nsp; ++d) total *= out_dims.v[d];
  if (total <= 0) return cudaSuccess;
  if (a.c <= 0) return cudaErrorInvalidValue;
  const bool ok = k::dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    window_copy_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const T*>(a.in), static_cast<T*>(a.out), total, a.nsp, a.c, in_dims, out_dims, shift,
        static_cast<const T*>(a.bias));
  });
  if (!ok) return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace lib
}  // namespace tp
