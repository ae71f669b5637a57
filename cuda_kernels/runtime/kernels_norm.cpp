// KernelDefs "softmax" (kernels/softmax.cu) and "layernorm" (kernels/layernorm.cu).
// Lowerings: ep_trtpy/builder/lowering/normalization.py.
//
// "softmax"
//   inputs   X [outer, R, inner] (any shape of that many elements): float32, float16 or bfloat16
//   outputs  Y, X's dtype and element count
//   ints     [log, outer, R, inner]    log: 0 = Softmax, 1 = LogSoftmax (over R)
// "layernorm"
//   inputs   X [rows, cols] (any shape of that many elements), scale [cols], bias [cols] or absent (-1),
//            R (X's element count) or absent: the rows normalized are X + R; float32, float16 or bfloat16, all the
//            same dtype
//   outputs  Y, X's dtype and element count; optionally S = X + R (only with R)
//   ints     [rows, cols]
//   floats   [epsilon]
#include "../kernels/norm.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::fail;

constexpr const char* kSoftmax = "softmax";
constexpr const char* kLayerNorm = "layernorm";

bool float_dtype(int32_t t) { return t == 1 || t == 10 || t == 16; }

int prepare_softmax(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kSoftmax, 1, 1, 1, err)) return 1;
  kutil::IntReader r(layer.ints, kSoftmax);
  norm::SoftmaxArgs a;
  a.log = static_cast<int>(r.next_in("log", 0, 1));
  a.outer = r.next_in("outer", 0, INT64_MAX);
  a.r = r.next_in("R", 0, INT64_MAX);
  a.inner = r.next_in("inner", 0, INT64_MAX);
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!float_dtype(x.dtype) || y.dtype != x.dtype)
    return fail(err, std::string(kSoftmax) + ": input '" + x.name + "' (" + kutil::dtype_name(x.dtype) +
                         ") and output '" + y.name + "' (" + kutil::dtype_name(y.dtype) +
                         ") must share one float dtype");
  const long long n = a.outer * a.r * a.inner;
  if (x.numel() != n || y.numel() != n)
    return fail(err, std::string(kSoftmax) + ": input " + kutil::dims_str(x.dims) + " and output " +
                         kutil::dims_str(y.dims) + " must have outer*R*inner = " + std::to_string(n) + " elements");
  a.dtype = x.dtype;
  return kutil::keep_args(e, layer, a);
}

int launch_softmax(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                   const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<norm::SoftmaxArgs>(layer);
  norm::SoftmaxArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(norm::softmax(a, ctx.stream, st.max_blocks), kSoftmax, err);
}

int prepare_layernorm(Engine& e, Layer& layer, std::string* err) {
  const size_t n_out = layer.outputs.size();
  if (n_out != 1 && n_out != 2) return fail(err, std::string(kLayerNorm) + ": expects outputs [Y] or [Y, S]");
  if (!kutil::check_arity(layer, kLayerNorm, 2, 4, n_out, err)) return 1;
  if (n_out == 2 && (layer.inputs.size() < 4 || layer.inputs[3] < 0))
    return fail(err, std::string(kLayerNorm) + ": the sum output S needs the residual input R");
  kutil::IntReader r(layer.ints, kLayerNorm);
  norm::LayerNormArgs a;
  a.rows = r.next_in("rows", 0, INT64_MAX);
  a.cols = r.next_in("cols", 0, INT64_MAX);
  if (!r.done()) return fail(err, r.error());
  if (layer.floats.size() != 1)
    return fail(err, std::string(kLayerNorm) + ": " + std::to_string(layer.floats.size()) +
                         " float parameters given, 1 (epsilon) expected");
  a.epsilon = static_cast<float>(layer.floats[0]);
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!float_dtype(x.dtype) || y.dtype != x.dtype)
    return fail(err, std::string(kLayerNorm) + ": input '" + x.name + "' (" + kutil::dtype_name(x.dtype) +
                         ") and output '" + y.name + "' (" + kutil::dtype_name(y.dtype) +
                         ") must share one float dtype");
  if (x.numel() != a.rows * a.cols || y.numel() != a.rows * a.cols)
    return fail(err, std::string(kLayerNorm) + ": input " + kutil::dims_str(x.dims) + " and output " +
                         kutil::dims_str(y.dims) + " must have rows*cols = " + std::to_string(a.rows * a.cols) +
                         " elements");
  for (size_t i = 1; i < layer.inputs.size(); ++i) {
    if (layer.inputs[i] < 0) continue;
    const TensorDesc& t = kutil::in_tensor(e, layer, i);
    if (i == 3) {
      if (t.dtype != x.dtype || t.numel() != x.numel())
        return fail(err, std::string(kLayerNorm) + ": residual '" + t.name + "' must have X's dtype and " +
                             std::to_string(x.numel()) + " elements");
      continue;
    }
    if (t.dtype != x.dtype || t.numel() != a.cols)
      return fail(err, std::string(kLayerNorm) + ": " + (i == 1 ? "scale" : "bias") + " '" + t.name + "' is " +
                           kutil::dtype_name(t.dtype) + kutil::dims_str(t.dims) + "; it must be " +
                           kutil::dtype_name(x.dtype) + " with cols = " + std::to_string(a.cols) + " elements");
  }
  if (n_out == 2) {
    const TensorDesc& sm = kutil::out_tensor(e, layer, 1);
    if (sm.dtype != x.dtype || sm.numel() != x.numel())
      return fail(err, std::string(kLayerNorm) + ": sum output '" + sm.name + "' must have X's dtype and size");
  }
  a.dtype = x.dtype;
  return kutil::keep_args(e, layer, a);
}

int launch_layernorm(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                     const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<norm::LayerNormArgs>(layer);
  norm::LayerNormArgs a = st.args;
  a.x = in[0];
  a.scale = in[1];
  a.bias = layer.inputs.size() > 2 ? in[2] : nullptr;
  a.residual = layer.inputs.size() > 3 ? in[3] : nullptr;
  a.y = out[0];
  a.sum = layer.outputs.size() > 1 ? out[1] : nullptr;
  return kutil::launch_status(norm::layernorm(a, ctx.stream, st.max_blocks), kLayerNorm, err);
}

const KernelDef kSoftmaxDef = {kSoftmax, &prepare_softmax, &launch_softmax, &kutil::release_args<norm::SoftmaxArgs>};
const KernelDef kLayerNormDef = {kLayerNorm, &prepare_layernorm, &launch_layernorm,
                                 &kutil::release_args<norm::LayerNormArgs>};
TP_REGISTER_KERNEL(kSoftmaxDef);
TP_REGISTER_KERNEL(kLayerNormDef);

}  // namespace
}  // namespace tp
