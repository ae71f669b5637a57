// Vector access helpers of the channels-last kernels (conv_nhwc.cu, depthwise_tiled.cu): V consecutive elements
// moved as one aligned access (16 bytes when V * sizeof(T) == 16) and converted to or from float.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "common.cuh"

namespace tp {
namespace nhwc {

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[V]) {
  const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = k::to_float(pk.v[i]);
}

template <typename T, int V>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int i = 0; i < V; ++i) pk.v[i] = k::from_float<T>(in[i]);
  *reinterpret_cast<Pack<T, V>*>(p) = pk;
}

// Widest vector (16 bytes) that divides C and the alignment of every pointer.
template <typename T>
int vector_width(long long c, std::initializer_list<const void*> ptrs) {
  int v = static_cast<int>(16 / sizeof(T));
  while (v > 1) {
    bool ok = c % v == 0;
    for (const void* p : ptrs)
      if (p != nullptr && reinterpret_cast<uintptr_t>(p) % (sizeof(T) * v) != 0) ok = false;
    if (ok) break;
    v /= 2;
  }
  return v;
}

}  // namespace nhwc
}  // namespace tp
