// Kernel "qdq": ONNX QuantizeLinear (mode 0) and DequantizeLinear (mode 1), per-tensor or per-axis, elementwise
// (kernels/qdq.cu; the math is in kernels/qdq.h).
//
// Parameter layout (written by ep_trtpy/builder/lowering/quantize.py, lower_quantize_linear and
// lower_dequantize_linear):
//   inputs  [X, scale, zero_point or -1]
//             X           mode 0: float32, float16 or bfloat16; mode 1: int8, uint8, int32 or float8e4m3fn
//             scale       float32 [channels] (the node's scale, converted exactly from float16 / bfloat16)
//             zero_point  int32 [channels] (the node's zero point widened); absent: 0, and always absent when the
//                         quantized side is float8e4m3fn
//   outputs [Y]           X's element count; mode 0: int8, uint8 or float8e4m3fn; mode 1: float32, float16 or
//                         bfloat16
//   ints    [mode, outer, channels, inner]    X read as [outer, channels, inner]: the scale entry of element i is
//                                             (i / inner) % channels (per-tensor: [1, 1, n]; per-axis along axis a
//                                             of shape d: [prod d[:a], d[a], prod d[a+1:]])
//   floats  []
#include <limits>

#include "../kernels/qdq.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::dtype_name;
using kutil::fail;

constexpr const char* kQdq = "qdq";
constexpr int kFloat = 1, kUint8 = 2, kInt8 = 3, kInt32 = 6, kHalf = 10, kBFloat16 = 16, kFp8 = 17;

int prepare_qdq(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kQdq, 2, 3, 1, err)) return 1;
  kutil::IntReader r(layer.ints, kQdq);
  qdq::QdqArgs a;
  const int64_t big = std::numeric_limits<int64_t>::max();
  a.mode = static_cast<int>(r.next_in("mode", 0, 1));
  a.outer = r.next_in("outer", 0, big);
  a.channels = r.next_in("channels", 1, big);
  a.inner = r.next_in("inner", 0, big);
  if (!r.done()) return fail(err, r.error());
  if (!layer.floats.empty())
    return fail(err, std::string(kQdq) + ": " + std::to_string(layer.floats.size()) +
                         " float parameters given, none expected");
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& s = kutil::in_tensor(e, layer, 1);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  const bool quantize = a.mode == 0;
  const TensorDesc& q = quantize ? y : x;  // the quantized side
  const TensorDesc& f = quantize ? x : y;  // the float side
  if (!kutil::dtype_in(f.dtype, {kFloat, kHalf, kBFloat16}))
    return fail(err, std::string(kQdq) + ": " + (quantize ? "input '" : "output '") + f.name + "' is " +
                         dtype_name(f.dtype) + "; float32, float16 or bfloat16 expected");
  const bool q_ok = quantize ? kutil::dtype_in(q.dtype, {kInt8, kUint8, kFp8})
                             : kutil::dtype_in(q.dtype, {kInt8, kUint8, kInt32, kFp8});
  if (!q_ok)
    return fail(err, std::string(kQdq) + ": " + (quantize ? "output '" : "input '") + q.name + "' is " +
                         dtype_name(q.dtype) + (quantize ? "; int8, uint8 or float8e4m3fn expected"
                                                         : "; int8, uint8, int32 or float8e4m3fn expected"));
  const long long n = a.outer * a.channels * a.inner;
  if (x.numel() != n || y.numel() != n)
    return fail(err, std::string(kQdq) + ": input " + kutil::dims_str(x.dims) + " and output " +
                         kutil::dims_str(y.dims) + " must have outer*channels*inner = " + std::to_string(n) +
                         " elements");
  if (s.dtype != kFloat || s.numel() != a.channels)
    return fail(err, std::string(kQdq) + ": scale '" + s.name + "' is " + dtype_name(s.dtype) +
                         kutil::dims_str(s.dims) + "; float32 with " + std::to_string(a.channels) +
                         " elements expected");
  if (layer.inputs.size() > 2 && layer.inputs[2] >= 0) {
    const TensorDesc& z = kutil::in_tensor(e, layer, 2);
    if (q.dtype == kFp8)
      return fail(err, std::string(kQdq) + ": zero point '" + z.name +
                           "' given for float8e4m3fn data, whose zero point is 0");
    if (z.dtype != kInt32 || z.numel() != a.channels)
      return fail(err, std::string(kQdq) + ": zero point '" + z.name + "' is " + dtype_name(z.dtype) +
                           kutil::dims_str(z.dims) + "; int32 with " + std::to_string(a.channels) +
                           " elements expected");
  }
  a.x_dtype = x.dtype;
  a.y_dtype = y.dtype;
  return kutil::keep_args(e, layer, a);
}

int launch_qdq(const Engine&, const Layer& layer, const void* const* in, void* const* out,
               const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<qdq::QdqArgs>(layer);
  qdq::QdqArgs a = st.args;
  a.x = in[0];
  a.scale = static_cast<const float*>(in[1]);
  a.zero = layer.inputs.size() > 2 ? static_cast<const int32_t*>(in[2]) : nullptr;
  a.y = out[0];
  return kutil::launch_status(qdq::qdq(a, ctx.stream, st.max_blocks), kQdq, err);
}

const KernelDef kQdqDef = {kQdq, &prepare_qdq, &launch_qdq, &kutil::release_args<qdq::QdqArgs>};
TP_REGISTER_KERNEL(kQdqDef);

}  // namespace
}  // namespace tp
