// KernelDefs "resize" (kernels/resize.cu) and "pool" (kernels/pool.cu).
// Lowerings: ep_trtpy/builder/lowering/resize.py, ep_trtpy/builder/lowering/pooling.py.
//
// "resize"   inputs [X], outputs [Y]: float32 or float16, same dtype
//            ints   [linear, coord_mode, nearest_mode, ndim (1..8), in_dims[ndim], out_dims[ndim], resized[ndim]]
//                   linear: 0 nearest, 1 linear; coord_mode: 0 half_pixel, 1 pytorch_half_pixel, 2 align_corners,
//                   3 asymmetric, 4 half_pixel_symmetric; nearest_mode: 0 round_prefer_floor,
//                   1 round_prefer_ceil, 2 floor, 3 ceil, 4 opset-10 (ceil if scale < 1 else truncate);
//                   resized[d]: 0 = dim d maps index to index
//            floats [scales[ndim]]   the scale used by the coordinate transformation of each dim
// "pool"     inputs [X], outputs [Y]: float32 or float16, same dtype
//            ints   [average, count_include_pad, nc, in_sp[3], out_sp[3], kernel[3], stride[3], pad_begin[3],
//                    pad_end[3], dilation[3]]
//                   X = [nc, in_sp...], Y = [nc, out_sp...]; 1-D and 2-D pools put extent-1 dims (kernel 1,
//                   stride 1, no pads, dilation 1) in front.
#include "../kernels/spatial.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::fail;

int check_float_io(const Engine& e, const Layer& layer, const char* name, int* dtype, std::string* err) {
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!(x.dtype == 1 || x.dtype == 10 || x.dtype == 16) || y.dtype != x.dtype)
    return fail(err, std::string(name) + ": input '" + x.name + "' (" + kutil::dtype_name(x.dtype) +
                         ") and output '" + y.name + "' (" + kutil::dtype_name(y.dtype) +
                         ") must share one float dtype (float32, float16 or bfloat16)");
  *dtype = x.dtype;
  return 0;
}

constexpr const char* kResize = "resize";

int prepare_resize(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kResize, 1, 1, 1, err)) return 1;
  sp::ResizeArgs a;
  if (int rc = check_float_io(e, layer, kResize, &a.dtype, err)) return rc;
  kutil::IntReader r(layer.ints, kResize);
  a.linear = static_cast<int>(r.next_in("linear", 0, 1));
  a.coord_mode = static_cast<int>(r.next_in("coord_mode", 0, 4));
  a.nearest_mode = static_cast<int>(r.next_in("nearest_mode", 0, 4));
  a.ndim = static_cast<int>(r.next_in("ndim", 1, sp::kMaxDims));
  long long n_in = 1, n_out = 1;
  for (int d = 0; d < a.ndim; ++d) n_in *= (a.in_dims[d] = r.next_in("in_dims", 0, INT64_MAX));
  for (int d = 0; d < a.ndim; ++d) n_out *= (a.out_dims[d] = r.next_in("out_dims", 0, INT64_MAX));
  for (int d = 0; d < a.ndim; ++d) a.resized[d] = static_cast<int>(r.next_in("resized", 0, 1));
  if (!r.done()) return fail(err, r.error());
  if (static_cast<int>(layer.floats.size()) != a.ndim)
    return fail(err, std::string(kResize) + ": " + std::to_string(layer.floats.size()) + " scales given for " +
                         std::to_string(a.ndim) + " dims");
  for (int d = 0; d < a.ndim; ++d) {
    a.scales[d] = static_cast<float>(layer.floats[d]);
    if (a.resized[d] && !(a.scales[d] > 0.0f))
      return fail(err, std::string(kResize) + ": scale of dim " + std::to_string(d) + " is not positive");
    if (!a.resized[d] && a.in_dims[d] != a.out_dims[d])
      return fail(err, std::string(kResize) + ": dim " + std::to_string(d) + " changes extent but is not resized");
    if (a.in_dims[d] == 0 && a.out_dims[d] != 0)
      return fail(err, std::string(kResize) + ": dim " + std::to_string(d) + " resizes an empty extent");
  }
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (x.numel() != n_in || y.numel() != n_out)
    return fail(err, std::string(kResize) + ": input " + kutil::dims_str(x.dims) + " / output " +
                         kutil::dims_str(y.dims) + " do not match the parameters' " + std::to_string(n_in) + " / " +
                         std::to_string(n_out) + " elements");
  return kutil::keep_args(e, layer, a);
}

int launch_resize(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                  const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<sp::ResizeArgs>(layer);
  sp::ResizeArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(sp::resize(a, ctx.stream, st.max_blocks), kResize, err);
}

constexpr const char* kPool = "pool";

int prepare_pool(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kPool, 1, 1, 1, err)) return 1;
  sp::PoolArgs a;
  if (int rc = check_float_io(e, layer, kPool, &a.dtype, err)) return rc;
  kutil::IntReader r(layer.ints, kPool);
  a.average = static_cast<int>(r.next_in("average", 0, 1));
  a.count_include_pad = static_cast<int>(r.next_in("count_include_pad", 0, 1));
  a.nc = r.next_in("nc", 0, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.in_sp[d] = r.next_in("in_sp", 0, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.out_sp[d] = r.next_in("out_sp", 0, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.kernel[d] = r.next_in("kernel", 1, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.stride[d] = r.next_in("stride", 1, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.pad_begin[d] = r.next_in("pad_begin", 0, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.pad_end[d] = r.next_in("pad_end", 0, INT64_MAX);
  for (int d = 0; d < 3; ++d) a.dilation[d] = r.next_in("dilation", 1, INT64_MAX);
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (x.numel() != a.nc * a.in_sp[0] * a.in_sp[1] * a.in_sp[2] ||
      y.numel() != a.nc * a.out_sp[0] * a.out_sp[1] * a.out_sp[2])
    return fail(err, std::string(kPool) + ": input " + kutil::dims_str(x.dims) + " / output " +
                         kutil::dims_str(y.dims) + " do not match nc and the spatial extents");
  return kutil::keep_args(e, layer, a);
}

int launch_pool(const Engine&, const Layer& layer, const void* const* in, void* const* out, const LaunchContext& ctx,
                std::string* err) {
  const auto& st = kutil::args_of<sp::PoolArgs>(layer);
  sp::PoolArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(sp::pool(a, ctx.stream, st.max_blocks), kPool, err);
}

const KernelDef kResizeDef = {kResize, &prepare_resize, &launch_resize, &kutil::release_args<sp::ResizeArgs>};
const KernelDef kPoolDef = {kPool, &prepare_pool, &launch_pool, &kutil::release_args<sp::PoolArgs>};
TP_REGISTER_KERNEL(kResizeDef);
TP_REGISTER_KERNEL(kPoolDef);

}  // namespace
}  // namespace tp
