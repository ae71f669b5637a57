// KernelDef "pool_nhwc" (kernels/conv_nhwc.cu): 2-D max / average pooling in channels-last layout.
// Lowering: ep_trtpy::Pool (channels_last) in ep_trtpy/builder/lowering/.
//
// "pool_nhwc"  inputs [X] [N, H, W, C], outputs [Y] [N, P, Q, C]: float32, float16 or bfloat16, same dtype
//              ints   [average, count_include_pad, N, C, H, W, P, Q, kh, kw, sh, sw, pbh, pbw, peh, pew, dh, dw]
//              max ignores padding (NaN propagates; a window of padding only gives -inf); average divides by
//              the count of window positions inside X, or with count_include_pad inside the padded X (never the
//              overhang of a ceil_mode window). P = floor((H + pbh + peh - ekh) / sh) + 1 at most (ceil mode may
//              give one more, whose window starts inside the input or the front padding); a window larger than
//              the padded input gives P <= 1 (as ONNX Runtime's CPU provider).
#include "../kernels/conv_nhwc.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::fail;
constexpr const char* kName = "pool_nhwc";

int prepare(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kName, 1, 1, 1, err)) return 1;
  nhwc::PoolArgs a;
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!kutil::dtype_in(x.dtype, {1, 10, 16}) || y.dtype != x.dtype)
    return fail(err, std::string(kName) + ": input '" + x.name + "' and output '" + y.name +
                         "' must share one float dtype (float32, float16 or bfloat16)");
  a.dtype = x.dtype;
  kutil::IntReader r(layer.ints, kName);
  a.average = r.next_in("average", 0, 1) != 0;
  a.count_include_pad = r.next_in("count_include_pad", 0, 1) != 0;
  nhwc::Window& g = a.g;
  g.n = r.next_in("N", 0, INT64_MAX);
  g.c = r.next_in("C", 0, INT64_MAX);
  g.h = r.next_in("H", 0, INT64_MAX);
  g.w = r.next_in("W", 0, INT64_MAX);
  g.p = r.next_in("P", 0, INT64_MAX);
  g.q = r.next_in("Q", 0, INT64_MAX);
  g.kh = static_cast<int>(r.next_in("kh", 1, 1 << 20));
  g.kw = static_cast<int>(r.next_in("kw", 1, 1 << 20));
  g.sh = static_cast<int>(r.next_in("sh", 1, 1 << 20));
  g.sw = static_cast<int>(r.next_in("sw", 1, 1 << 20));
  g.ph = static_cast<int>(r.next_in("pbh", 0, 1 << 20));
  g.pw = static_cast<int>(r.next_in("pbw", 0, 1 << 20));
  a.peh = static_cast<int>(r.next_in("peh", 0, 1 << 20));
  a.pew = static_cast<int>(r.next_in("pew", 0, 1 << 20));
  g.dh = static_cast<int>(r.next_in("dh", 1, 1 << 20));
  g.dw = static_cast<int>(r.next_in("dw", 1, 1 << 20));
  if (!r.done()) return fail(err, r.error());
  if (x.dims != std::vector<int64_t>{g.n, g.h, g.w, g.c} || y.dims != std::vector<int64_t>{g.n, g.p, g.q, g.c})
    return fail(err, std::string(kName) + ": input " + kutil::dims_str(x.dims) + " / output " +
                         kutil::dims_str(y.dims) + " are not [N, H, W, C] / [N, P, Q, C] of the parameters");
  const int64_t span_h = g.h + g.ph + a.peh - ((g.kh - 1) * int64_t(g.dh) + 1);
  const int64_t span_w = g.w + g.pw + a.pew - ((g.kw - 1) * int64_t(g.dw) + 1);
  auto most = [](int64_t span, int stride) { return span < 0 ? int64_t(1) : span / stride + 2; };
  if (g.p * g.q > 0 && (g.p > most(span_h, g.sh) || g.q > most(span_w, g.sw)))
    return fail(err, std::string(kName) + ": output extents " + std::to_string(g.p) + "x" + std::to_string(g.q) +
                         " do not fit the window and padding");
  return kutil::keep_args(e, layer, a);
}

int launch(const Engine&, const Layer& layer, const void* const* in, void* const* out, const LaunchContext& ctx,
           std::string* err) {
  const auto& st = kutil::args_of<nhwc::PoolArgs>(layer);
  nhwc::PoolArgs a = st.args;
  a.x = in[0];
  a.y = out[0];
  return kutil::launch_status(nhwc::pool(a, ctx.stream, st.max_blocks), kName, err);
}

const KernelDef kDef = {kName, &prepare, &launch, &kutil::release_args<nhwc::PoolArgs>};
TP_REGISTER_KERNEL(kDef);

}  // namespace
}  // namespace tp
