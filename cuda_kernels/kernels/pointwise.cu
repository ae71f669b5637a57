// The pointwise program interpreter (ep_trtpy::Pointwise). Semantics: ep_trtpy/ops/pointwise_program.py.
//
// One thread evaluates the program for V consecutive output elements (V = 4 on the vector path: a 1-D output whose
// inputs are contiguous or scalars and whose pointers are 16-byte aligned; V = 1 otherwise, with broadcast strides
// over up to 8 collapsed dims). The register file is a local array indexed only by unrolled compile-time
// constants (reads and writes compare the run-time register number against each slot), so it lives in machine
// registers; NREG (8, 16, 32) is the number of slots the lowering's register allocation needs.
#include "common.cuh"
#include "pointwise.h"

namespace tp {
namespace pw {
namespace {

using k::kBool;
using k::kFloat;
using k::kHalf;
using k::kInt32;
using k::kInt64;
using ll = long long;
using ull = unsigned long long;

// ------------------------------------------------------------------------------------------ conversions --
template <typename T> __device__ __forceinline__ T load_elem(int dtype, const void* p, ll off);

template <>
__device__ __forceinline__ float load_elem<float>(int dtype, const void* p, ll off) {
  switch (dtype) {
    case kFloat: return static_cast<const float*>(p)[off];
    case kHalf: return __half2float(static_cast<const __half*>(p)[off]);
    case k::kBFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[off]);
    case kInt32: return static_cast<float>(static_cast<const int*>(p)[off]);
    case kInt64: return __ll2float_rn(static_cast<const ll*>(p)[off]);
    case kBool: return static_cast<const unsigned char*>(p)[off] ? 1.0f : 0.0f;
  }
  return 0.0f;
}

template <>
__device__ __forceinline__ ll load_elem<ll>(int dtype, const void* p, ll off) {
  switch (dtype) {
    case kFloat: return __float2ll_rz(static_cast<const float*>(p)[off]);
    case kHalf: return __half2ll_rz(static_cast<const __half*>(p)[off]);
    case k::kBFloat16: return __float2ll_rz(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[off]));
    case kInt32: return static_cast<ll>(static_cast<const int*>(p)[off]);
    case kInt64: return static_cast<const ll*>(p)[off];
    case kBool: return static_cast<const unsigned char*>(p)[off] ? 1 : 0;
  }
  return 0;
}

__device__ __forceinline__ void store_elem(int dtype, void* p, ll off, float v) {
  switch (dtype) {
    case kFloat: static_cast<float*>(p)[off] = v; break;
    case kHalf: static_cast<__half*>(p)[off] = __float2half_rn(v); break;
    case k::kBFloat16: static_cast<__nv_bfloat16*>(p)[off] = __float2bfloat16_rn(v); break;
    case kInt32: static_cast<int*>(p)[off] = __float2int_rz(v); break;
    case kInt64: static_cast<ll*>(p)[off] = __float2ll_rz(v); break;
    case kBool: static_cast<unsigned char*>(p)[off] = (v != 0.0f) ? 1 : 0; break;
  }
}

__device__ __forceinline__ void store_elem(int dtype, void* p, ll off, ll v) {
  switch (dtype) {
    case kFloat: static_cast<float*>(p)[off] = __ll2float_rn(v); break;
    case kHalf: static_cast<__half*>(p)[off] = __ll2half_rn(v); break;
    case k::kBFloat16: static_cast<__nv_bfloat16*>(p)[off] = __float2bfloat16_rn(__ll2float_rn(v)); break;
    case kInt32: static_cast<int*>(p)[off] = static_cast<int>(static_cast<unsigned>(static_cast<ull>(v))); break;
    case kInt64: static_cast<ll*>(p)[off] = v; break;
    case kBool: static_cast<unsigned char*>(p)[off] = (v != 0) ? 1 : 0; break;
  }
}

// Four consecutive elements starting at `base` (a multiple of 4) of a 16-byte aligned contiguous tensor of n.
template <typename T>
__device__ __forceinline__ void load4(int dtype, const void* p, ll base, ll n, T (&o)[4]) {
  if (base + 4 <= n) {
    switch (dtype) {
      case kFloat: {
        const float4 v = *reinterpret_cast<const float4*>(static_cast<const float*>(p) + base);
        o[0] = load_elem<T>(kFloat, &v.x, 0); o[1] = load_elem<T>(kFloat, &v.y, 0);
        o[2] = load_elem<T>(kFloat, &v.z, 0); o[3] = load_elem<T>(kFloat, &v.w, 0);
        return;
      }
      case kHalf: {
        const uint2 v = *reinterpret_cast<const uint2*>(static_cast<const __half*>(p) + base);
        const __half* h = reinterpret_cast<const __half*>(&v);
#pragma unroll
        for (int j = 0; j < 4; ++j) o[j] = load_elem<T>(kHalf, h, j);
        return;
      }
      case kInt32: {
        const int4 v = *reinterpret_cast<const int4*>(static_cast<const int*>(p) + base);
        o[0] = load_elem<T>(kInt32, &v.x, 0); o[1] = load_elem<T>(kInt32, &v.y, 0);
        o[2] = load_elem<T>(kInt32, &v.z, 0); o[3] = load_elem<T>(kInt32, &v.w, 0);
        return;
      }
      case kInt64: {
        const longlong2 v0 = *reinterpret_cast<const longlong2*>(static_cast<const ll*>(p) + base);
        const longlong2 v1 = *reinterpret_cast<const longlong2*>(static_cast<const ll*>(p) + base + 2);
        o[0] = load_elem<T>(kInt64, &v0.x, 0); o[1] = load_elem<T>(kInt64, &v0.y, 0);
        o[2] = load_elem<T>(kInt64, &v1.x, 0); o[3] = load_elem<T>(kInt64, &v1.y, 0);
        return;
      }
      case kBool: {
        const uchar4 v = *reinterpret_cast<const uchar4*>(static_cast<const unsigned char*>(p) + base);
        o[0] = load_elem<T>(kBool, &v.x, 0); o[1] = load_elem<T>(kBool, &v.y, 0);
        o[2] = load_elem<T>(kBool, &v.z, 0); o[3] = load_elem<T>(kBool, &v.w, 0);
        return;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) o[j] = (base + j < n) ? load_elem<T>(dtype, p, base + j) : T(0);
}

__device__ __forceinline__ void store4(int dtype, void* p, ll base, ll n, const float (&v)[4]) {
  if (base + 4 <= n && dtype == kFloat) {
    *reinterpret_cast<float4*>(static_cast<float*>(p) + base) = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
  if (base + 4 <= n && dtype == kHalf) {
    __half2 h[2];
    h[0] = __floats2half2_rn(v[0], v[1]);
    h[1] = __floats2half2_rn(v[2], v[3]);
    *reinterpret_cast<uint2*>(static_cast<__half*>(p) + base) = *reinterpret_cast<const uint2*>(h);
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j)
    if (base + j < n) store_elem(dtype, p, base + j, v[j]);
}

// ------------------------------------------------------------------------------------------------ float ops --
__device__ __forceinline__ float fmax_nan(float a, float b) { return k::nan_max(a, b); }
__device__ __forceinline__ float fmin_nan(float a, float b) { return k::nan_min(a, b); }
__device__ __forceinline__ float f_bool(bool b) { return b ? 1.0f : 0.0f; }

// numpy's float remainder: the result takes the sign of the divisor.
__device__ __forceinline__ float f_pymod(float a, float b) {
  float m = fmodf(a, b);
  if (b == 0.0f) return m;
  if (m != 0.0f) {
    if ((b < 0.0f) != (m < 0.0f)) m += b;
  } else {
    m = copysignf(0.0f, b);
  }
  return m;
}

__device__ __forceinline__ float f_cast(float x, int to) {
  switch (to) {
    case kHalf: return __half2float(__float2half_rn(x));
    case k::kBFloat16: return __bfloat162float(__float2bfloat16_rn(x));
    case kInt32: return static_cast<float>(__float2int_rz(x));
    case kInt64: return __ll2float_rn(__float2ll_rz(x));
    case kBool: return f_bool(x != 0.0f);
  }
  return x;
}

template <int V>
__device__ __forceinline__ void apply(int op, const float (&A)[V], const float (&B)[V], const float (&C)[V],
                                      float i0, float i1, float (&R)[V]) {
#define TP_EW(expr)                                     \
  _Pragma("unroll") for (int v = 0; v < V; ++v) {      \
    const float x = A[v], y = B[v], z = C[v];           \
    (void)x; (void)y; (void)z;                          \
    R[v] = (expr);                                      \
  }                                                     \
  break
  switch (op) {
    case kMov: TP_EW(x);
    case kConst: TP_EW(i0);
    case kNeg: TP_EW(-x);
    case kAbs: TP_EW(fabsf(x));
    case kRelu: TP_EW(fmax_nan(x, 0.0f));
    case kSigmoid: TP_EW(1.0f / (1.0f + expf(-x)));
    case kTanh: TP_EW(tanhf(x));
    case kErf: TP_EW(erff(x));
    case kExp: TP_EW(expf(x));
    case kLog: TP_EW(logf(x));
    case kSqrt: TP_EW(sqrtf(x));
    case kReciprocal: TP_EW(1.0f / x);
    case kFloor: TP_EW(floorf(x));
    case kCeil: TP_EW(ceilf(x));
    case kRound: TP_EW(rintf(x));
    case kSign: TP_EW(x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x));
    case kSin: TP_EW(sinf(x));
    case kCos: TP_EW(cosf(x));
    case kIsNan: TP_EW(f_bool(x != x));
    case kIsInf: TP_EW(f_bool(isinf(x)));
    case kNot: TP_EW(f_bool(x == 0.0f));
    case kGelu: TP_EW(0.5f * x * (1.0f + erff(x / 1.41421356237309515f)));
    case kGeluTanh: TP_EW(0.5f * x * (1.0f + tanhf(0.797884583473205566f * (x + 0.044715f * x * x * x))));
    case kSoftplus: TP_EW(x > 20.0f ? x : log1pf(expf(x)));
    case kSoftsign: TP_EW(x / (1.0f + fabsf(x)));
    case kHardSwish: TP_EW(x * fmin_nan(fmax_nan(x / 6.0f + 0.5f, 0.0f), 1.0f));
    case kAdd: TP_EW(x + y);
    case kSub: TP_EW(x - y);
    case kMul: TP_EW(x * y);
    case kDiv: TP_EW(x / y);
    case kPow: TP_EW(powf(x, y));
    case kMin: TP_EW(fmin_nan(x, y));
    case kMax: TP_EW(fmax_nan(x, y));
    case kMod: TP_EW(i0 != 0.0f ? fmodf(x, y) : f_pymod(x, y));
    case kEq: TP_EW(f_bool(x == y));
    case kLt: TP_EW(f_bool(x < y));
    case kGt: TP_EW(f_bool(x > y));
    case kLe: TP_EW(f_bool(x <= y));
    case kGe: TP_EW(f_bool(x >= y));
    case kAnd: TP_EW(f_bool(x != 0.0f && y != 0.0f));
    case kOr: TP_EW(f_bool(x != 0.0f || y != 0.0f));
    case kXor: TP_EW(f_bool((x != 0.0f) != (y != 0.0f)));
    case kPrelu: TP_EW(x < 0.0f ? y * x : x);
    case kWhere: TP_EW(x != 0.0f ? y : z);
    case kLeakyRelu: TP_EW(x < 0.0f ? i0 * x : x);
    case kElu: TP_EW(x < 0.0f ? i0 * (expf(x) - 1.0f) : x);
    case kThresholdedRelu: TP_EW(x > i0 ? x : 0.0f);
    case kCelu: TP_EW(fmax_nan(0.0f, x) + fmin_nan(0.0f, i0 * (expf(x / i0) - 1.0f)));
    case kHardSigmoid: TP_EW(fmin_nan(fmax_nan(i0 * x + i1, 0.0f), 1.0f));
    case kSelu: TP_EW(i1 * (x <= 0.0f ? i0 * (expf(x) - 1.0f) : x));
    case kClip: TP_EW(fmin_nan(fmax_nan(x, i0), i1));
    case kCast: TP_EW(f_cast(x, static_cast<int>(i0)));
    default: TP_EW(x);
  }
#undef TP_EW
}

// ------------------------------------------------------------------------------------------------ int64 ops --
__device__ __forceinline__ ll wrap_add(ll a, ll b) {
  return static_cast<ll>(static_cast<ull>(a) + static_cast<ull>(b));
}
__device__ __forceinline__ ll wrap_sub(ll a, ll b) {
  return static_cast<ll>(static_cast<ull>(a) - static_cast<ull>(b));
}
__device__ __forceinline__ ll wrap_mul(ll a, ll b) {
  return static_cast<ll>(static_cast<ull>(a) * static_cast<ull>(b));
}
__device__ __forceinline__ ll wrap_neg(ll a) { return static_cast<ll>(0ULL - static_cast<ull>(a)); }

// C division (toward zero); x / 0 = 0 and x % 0 = 0 as numpy gives; INT64_MIN / -1 wraps.
__device__ __forceinline__ ll i_div(ll a, ll b) { return b == 0 ? 0 : (b == -1 ? wrap_neg(a) : a / b); }
__device__ __forceinline__ ll i_fmod(ll a, ll b) { return (b == 0 || b == -1) ? 0 : a % b; }
__device__ __forceinline__ ll i_pymod(ll a, ll b) {
  if (b == 0 || b == -1) return 0;
  ll m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

__device__ __forceinline__ ll i_cast(ll x, int to) {
  switch (to) {
    case kHalf: return __half2ll_rz(__ll2half_rn(x));
    case k::kBFloat16: return __float2ll_rz(__bfloat162float(__float2bfloat16_rn(__ll2float_rn(x))));
    case kInt32: return static_cast<ll>(static_cast<int>(static_cast<unsigned>(static_cast<ull>(x))));
    case kBool: return x != 0 ? 1 : 0;
  }
  return x;
}

// Integer power, exact (double pow can land one ulp under an integer result, which truncation then loses):
// squaring with wrap-around for y >= 0; for y < 0 the real result truncates to 0 except for bases 1 and -1.
__device__ __forceinline__ ll i_pow(ll x, ll y) {
  if (y < 0) return x == 1 ? 1 : (x == -1 ? ((y & 1) ? -1 : 1) : 0);
  ll result = 1, base = x;
  while (y > 0) {
    if (y & 1) result = wrap_mul(result, base);
    y >>= 1;
    if (y > 0) base = wrap_mul(base, base);
  }
  return result;
}

template <int V>
__device__ __forceinline__ void apply(int op, const ll (&A)[V], const ll (&B)[V], const ll (&C)[V], ll i0, ll i1,
                                      ll (&R)[V]) {
#define TP_EW(expr)                                     \
  _Pragma("unroll") for (int v = 0; v < V; ++v) {      \
    const ll x = A[v], y = B[v], z = C[v];              \
    (void)x; (void)y; (void)z;                          \
    R[v] = (expr);                                      \
  }                                                     \
  break
  switch (op) {
    case kMov: TP_EW(x);
    case kConst: TP_EW(i0);
    case kNeg: TP_EW(wrap_neg(x));
    case kAbs: TP_EW(x < 0 ? wrap_neg(x) : x);
    case kRelu: TP_EW(x > 0 ? x : 0);
    case kSign: TP_EW(static_cast<ll>(x > 0) - static_cast<ll>(x < 0));
    case kNot: TP_EW(x == 0 ? 1 : 0);
    case kAdd: TP_EW(wrap_add(x, y));
    case kSub: TP_EW(wrap_sub(x, y));
    case kMul: TP_EW(wrap_mul(x, y));
    case kDiv: TP_EW(i_div(x, y));
    case kPow: TP_EW(i_pow(x, y));
    case kMin: TP_EW(x < y ? x : y);
    case kMax: TP_EW(x > y ? x : y);
    case kMod: TP_EW(i0 != 0 ? i_fmod(x, y) : i_pymod(x, y));
    case kEq: TP_EW(x == y ? 1 : 0);
    case kLt: TP_EW(x < y ? 1 : 0);
    case kGt: TP_EW(x > y ? 1 : 0);
    case kLe: TP_EW(x <= y ? 1 : 0);
    case kGe: TP_EW(x >= y ? 1 : 0);
    case kAnd: TP_EW((x != 0 && y != 0) ? 1 : 0);
    case kOr: TP_EW((x != 0 || y != 0) ? 1 : 0);
    case kXor: TP_EW(((x != 0) != (y != 0)) ? 1 : 0);
    case kPrelu: TP_EW(x < 0 ? wrap_mul(y, x) : x);
    case kWhere: TP_EW(x != 0 ? y : z);
    case kClip: TP_EW((x > i0 ? x : i0) < i1 ? (x > i0 ? x : i0) : i1);
    case kCast: TP_EW(i_cast(x, static_cast<int>(i0)));
    default: TP_EW(x);
  }
#undef TP_EW
}

// ------------------------------------------------------------------------------------------ register file --
template <typename T, int NREG, int V>
__device__ __forceinline__ void reg_read(const T (&regs)[NREG][V], int r, T (&o)[V]) {
#pragma unroll
  for (int v = 0; v < V; ++v) o[v] = regs[0][v];
#pragma unroll
  for (int s = 1; s < NREG; ++s)
    if (r == s) {
#pragma unroll
      for (int v = 0; v < V; ++v) o[v] = regs[s][v];
    }
}

template <typename T, int NREG, int V>
__device__ __forceinline__ void reg_write(T (&regs)[NREG][V], int r, const T (&x)[V]) {
#pragma unroll
  for (int s = 0; s < NREG; ++s)
    if (r == s) {
#pragma unroll
      for (int v = 0; v < V; ++v) regs[s][v] = x[v];
    }
}

// ------------------------------------------------------------------------------------------------- kernel --
// V == 1: any collapsed shape with broadcast strides. V == 4: four consecutive elements of the innermost dim per
// thread, vector loads and stores: either 1-D, or N-D with the innermost dim a multiple of 4 and every input either
// broadcast along it (stride 0: one scalar load) or contiguous along it with outer strides multiples of 4 (so each
// group of 4 starts 4-aligned); pointers 16-byte aligned (vector_ok checks all of this at launch).
template <typename T, int NREG, int V>
__global__ void __launch_bounds__(256) pointwise_kernel(const __grid_constant__ Params<T> p) {
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x * V;
  const int last = p.ndim - 1;
  (void)last;
  for (ll base = (static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x) * V; base < p.n; base += step) {
    ll coord[kMaxDims];
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) coord[d] = 0;
    if (V == 1 || p.ndim > 1) {
      if (p.n <= 0x7fffffffLL) {
        unsigned rem = static_cast<unsigned>(base);
#pragma unroll
        for (int d = kMaxDims - 1; d >= 1; --d)
          if (d < p.ndim) {
            const unsigned dim = static_cast<unsigned>(p.dims[d]);
            coord[d] = rem % dim;
            rem /= dim;
          }
        coord[0] = rem;
      } else {
        ll rem = base;
#pragma unroll
        for (int d = kMaxDims - 1; d >= 1; --d)
          if (d < p.ndim) {
            coord[d] = rem % p.dims[d];
            rem /= p.dims[d];
          }
        coord[0] = rem;
      }
    }
    T regs[NREG][V];
#pragma unroll
    for (int s = 0; s < NREG; ++s)
#pragma unroll
      for (int v = 0; v < V; ++v) regs[s][v] = T(0);

    for (int pc = 0; pc < p.n_code; ++pc) {
      const Instr ins = p.code[pc];
      T a[V], b[V], c[V], r[V];
#pragma unroll
      for (int v = 0; v < V; ++v) a[v] = b[v] = c[v] = T(0);
      if (ins.op == kLoad) {
        const int k = ins.a;
        if constexpr (V == 1) {
          ll off = 0;
#pragma unroll
          for (int d = 0; d < kMaxDims; ++d)
            if (d < p.ndim) off += coord[d] * p.strides[k][d];
          a[0] = load_elem<T>(p.in_dtype[k], p.in[k], off);
        } else {
          ll off = 0;
          if (p.ndim == 1) {
            off = base * p.strides[k][0];
          } else {
#pragma unroll
            for (int d = 0; d < kMaxDims; ++d)
              if (d < p.ndim) off += coord[d] * p.strides[k][d];
          }
          if (p.strides[k][last] == 0) {
            const T s = load_elem<T>(p.in_dtype[k], p.in[k], off);
#pragma unroll
            for (int v = 0; v < V; ++v) a[v] = s;
          } else {
            load4<T>(p.in_dtype[k], p.in[k], off, p.ndim == 1 ? p.n : off + 4, a);
          }
        }
        reg_write<T, NREG, V>(regs, ins.dst, a);
        continue;
      }
      if (ins.op == kStore) {
        reg_read<T, NREG, V>(regs, ins.a, a);
        const int o = ins.b;
        if constexpr (V == 1)
          store_elem(p.out_dtype[o], p.out[o], base, a[0]);
        else
          store4(p.out_dtype[o], p.out[o], base, p.n, a);
        continue;
      }
      if (ins.nsrc >= 1) reg_read<T, NREG, V>(regs, ins.a, a);
      if (ins.nsrc >= 2) reg_read<T, NREG, V>(regs, ins.b, b);
      if (ins.nsrc >= 3) reg_read<T, NREG, V>(regs, ins.c, c);
      apply<V>(ins.op, a, b, c, p.imm[pc][0], p.imm[pc][1], r);
      reg_write<T, NREG, V>(regs, ins.dst, r);
    }
  }
}

constexpr int kThreads = 256;

template <typename T, int NREG, int V>
cudaError_t run(const Params<T>& p, cudaStream_t stream, ll max_blocks) {
  const ll items = (p.n + V - 1) / V;
  pointwise_kernel<T, NREG, V><<<k::grid_1d(items, kThreads, max_blocks), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

template <typename T>
bool vector_ok(const Params<T>& p) {
  if (p.ndim < 1) return false;
  const int last = p.ndim - 1;
  if (p.ndim > 1 && p.dims[last] % 4 != 0) return false;
  for (int k = 0; k < p.n_in; ++k) {
    const long long inner = p.strides[k][last];
    if (inner != 0 && inner != 1) return false;
    if (inner == 1) {
      if (!aligned16(p.in[k])) return false;
      for (int d = 0; d < last; ++d)
        if (p.strides[k][d] % 4 != 0) return false;
    }
  }
  for (int o = 0; o < p.n_out; ++o)
    if (!aligned16(p.out[o])) return false;
  return true;
}

// ---------------------------------------------------------------------------------------- conversion copy --
// The program "load input 0, (mov,) store to output 0" over a contiguous, unbroadcast input is a dtype conversion
// (a Cast at an engine's boundary, float32 <-> float16/bfloat16): 16 bytes of input per thread, no interpreter.
template <typename I, typename O>
__global__ void __launch_bounds__(256) convert_kernel(const I* __restrict__ in, O* __restrict__ out, ll n) {
  constexpr int V = 16 / sizeof(I);
  const ll groups = n / V;
  const ll step = static_cast<ll>(gridDim.x) * blockDim.x;
  for (ll g = static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += step) {
    const uint4 ip = reinterpret_cast<const uint4*>(in)[g];
    const I* iv = reinterpret_cast<const I*>(&ip);
    alignas(16) O ov[V];
#pragma unroll
    for (int j = 0; j < V; ++j) ov[j] = k::from_float<O>(k::to_float(iv[j]));
    if constexpr (sizeof(O) * V == 16) {
      reinterpret_cast<uint4*>(out)[g] = *reinterpret_cast<const uint4*>(ov);
    } else if constexpr (sizeof(O) * V == 8) {
      reinterpret_cast<uint2*>(out)[g] = *reinterpret_cast<const uint2*>(ov);
    } else {  // 32 bytes: a 16-bit input widened to float32
      reinterpret_cast<uint4*>(out)[2 * g] = reinterpret_cast<const uint4*>(ov)[0];
      reinterpret_cast<uint4*>(out)[2 * g + 1] = reinterpret_cast<const uint4*>(ov)[1];
    }
  }
  for (ll i = groups * V + static_cast<ll>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    out[i] = k::from_float<O>(k::to_float(in[i]));
}

// Whether `p` is a plain conversion copy of a contiguous input (see convert_kernel).
bool is_conversion(const Params<float>& p) {
  if (p.n_in != 1 || p.n_out != 1 || p.n_code < 2 || p.n_code > 3 || p.ndim < 1) return false;
  const Instr& ld = p.code[0];
  const Instr& st = p.code[p.n_code - 1];
  if (ld.op != kLoad || ld.a != 0 || st.op != kStore || st.b != 0) return false;
  int reg = ld.dst;
  if (p.n_code == 3) {
    const Instr& mv = p.code[1];
    if (mv.op != kMov || mv.a != reg) return false;
    reg = mv.dst;
  }
  if (st.a != reg) return false;
  long long expect = 1;  // contiguous strides of the collapsed output dims
  for (int d = p.ndim - 1; d >= 0; --d) {
    if (p.dims[d] != 1 && p.strides[0][d] != expect) return false;
    expect *= p.dims[d];
  }
  return true;
}

template <typename I>
bool launch_convert_from(const void* in, void* out, int out_dtype, ll n, cudaStream_t stream, ll max_blocks) {
  const unsigned grid = k::grid_1d((n + 16 / sizeof(I) - 1) / (16 / sizeof(I)), 256, max_blocks);
  const I* src = static_cast<const I*>(in);
  switch (out_dtype) {
    case kFloat: convert_kernel<I, float><<<grid, 256, 0, stream>>>(src, static_cast<float*>(out), n); return true;
    case kHalf: convert_kernel<I, __half><<<grid, 256, 0, stream>>>(src, static_cast<__half*>(out), n); return true;
    case k::kBFloat16:
      convert_kernel<I, __nv_bfloat16><<<grid, 256, 0, stream>>>(src, static_cast<__nv_bfloat16*>(out), n);
      return true;
  }
  return false;
}

// Launches the conversion when `p` is one and its dtypes and pointers allow; false leaves it to the interpreter.
bool launch_conversion(const Params<float>& p, cudaStream_t stream, ll max_blocks) {
  if (!is_conversion(p) || (reinterpret_cast<uintptr_t>(p.in[0]) & 15u) != 0 ||
      (reinterpret_cast<uintptr_t>(p.out[0]) & 15u) != 0)
    return false;
  switch (p.in_dtype[0]) {
    case kFloat: return launch_convert_from<float>(p.in[0], p.out[0], p.out_dtype[0], p.n, stream, max_blocks);
    case kHalf: return launch_convert_from<__half>(p.in[0], p.out[0], p.out_dtype[0], p.n, stream, max_blocks);
    case k::kBFloat16:
      return launch_convert_from<__nv_bfloat16>(p.in[0], p.out[0], p.out_dtype[0], p.n, stream, max_blocks);
  }
  return false;
}

template <typename T>
void bind(Params<T>& p, const void* const* in, void* const* out) {
  for (int k = 0; k < p.n_in; ++k) p.in[k] = in[k];
  for (int o = 0; o < p.n_out; ++o) p.out[o] = out[o];
}

}  // namespace

cudaError_t launch(const Plan& plan, const void* const* in, void* const* out, cudaStream_t stream,
                   long long max_blocks) {
  if (plan.compute == 0) {
    if (plan.f.n <= 0) return cudaSuccess;
    Params<float> p = plan.f;
    bind(p, in, out);
    if (launch_conversion(p, stream, max_blocks)) return cudaGetLastError();
    const bool vec = vector_ok(p) && p.n >= 4;
    switch (plan.nreg) {
      case 8: return vec ? run<float, 8, 4>(p, stream, max_blocks) : run<float, 8, 1>(p, stream, max_blocks);
      case 16: return vec ? run<float, 16, 4>(p, stream, max_blocks) : run<float, 16, 1>(p, stream, max_blocks);
      default: return run<float, 32, 1>(p, stream, max_blocks);
    }
  }
  if (plan.i.n <= 0) return cudaSuccess;
  Params<ll> p = plan.i;
  bind(p, in, out);
  if (plan.nreg <= 8) return run<ll, 8, 1>(p, stream, max_blocks);
  return run<ll, 32, 1>(p, stream, max_blocks);
}

}  // namespace pw
}  // namespace tp
