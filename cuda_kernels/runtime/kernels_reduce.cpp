// KernelDefs "reduce", "argmax", "argmin" (kernels/reduce.cu). Lowering: ep_trtpy/builder/lowering/reduce.py.
//
// "reduce"
//   inputs   X [outer, R, inner] (any shape of that many elements): float32, float16, int32, int64
//   outputs  Y [outer, inner] (any shape of that many elements), X's dtype
//   ints     [op, outer, R, inner]   op: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 l1, 6 l2, 7 sumsquare,
//                                    8 logsumexp (integer dtypes: sum, max, min, prod only)
// "argmax" / "argmin"
//   inputs   X [outer, R, inner]: float32, float16, int32, int64
//   outputs  Y [outer, inner] int64
//   ints     [select_last, outer, R, inner]
#include "../kernels/reduce.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::fail;

int read_shape(const Engine& e, const Layer& layer, kutil::IntReader& r, const char* name, long long* outer,
               long long* rr, long long* inner, std::string* err) {
  *outer = r.next_in("outer", 0, INT64_MAX);
  *rr = r.next_in("R", 0, INT64_MAX);
  *inner = r.next_in("inner", 0, INT64_MAX);
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (x.numel() != *outer * *rr * *inner)
    return fail(err, std::string(name) + ": input '" + x.name + "' " + kutil::dims_str(x.dims) + " does not have " +
                         "outer*R*inner = " + std::to_string(*outer * *rr * *inner) + " elements");
  if (y.numel() != *outer * *inner)
    return fail(err, std::string(name) + ": output '" + y.name + "' " + kutil::dims_str(y.dims) +
                         " does not have outer*inner = " + std::to_string(*outer * *inner) + " elements");
  return 0;
}

constexpr const char* kReduce = "reduce";

int prepare_reduce(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kReduce, 1, 1, 1, err)) return 1;
  kutil::IntReader r(layer.ints, kReduce);
  red::Args a;
  a.op = static_cast<int>(r.next_in("op", 0, red::kNumOps - 1));
  if (int rc = read_shape(e, layer, r, kReduce, &a.outer, &a.r, &a.inner, err)) return rc;
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!kutil::dtype_in(x.dtype, {1, 10, 16, 6, 7}))
    return fail(err, std::string(kReduce) + ": input '" + x.name + "' is " + kutil::dtype_name(x.dtype) +
                         ", not float32/float16/bfloat16/int32/int64");
  if (y.dtype != x.dtype)
    return fail(err, std::string(kReduce) + ": output '" + y.name + "' is " + kutil::dtype_name(y.dtype) +
                         ", the input is " + kutil::dtype_name(x.dtype));
  const bool is_int = x.dtype == 6 || x.dtype == 7;
  if (is_int && !(a.op == red::kSum || a.op == red::kMax || a.op == red::kMin || a.op == red::kProd))
    return fail(err, std::string(kReduce) + ": op " + std::to_string(a.op) + " needs a float input; '" + x.name +
                         "' is " + kutil::dtype_name(x.dtype));
  a.dtype = x.dtype;
  return kutil::keep_args(e, layer, a);
}

int launch_reduce(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                  const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<red::Args>(layer);
  red::Args a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(red::reduce(a, ctx.stream, st.max_blocks), kReduce, err);
}

template <int SelectMin>
int prepare_arg(Engine& e, Layer& layer, std::string* err) {
  const char* name = SelectMin ? "argmin" : "argmax";
  if (!kutil::check_arity(layer, name, 1, 1, 1, err)) return 1;
  kutil::IntReader r(layer.ints, name);
  red::ArgArgs a;
  a.select_min = SelectMin;
  a.select_last = static_cast<int>(r.next_in("select_last", 0, 1));
  if (int rc = read_shape(e, layer, r, name, &a.outer, &a.r, &a.inner, err)) return rc;
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!kutil::dtype_in(x.dtype, {1, 10, 16, 6, 7}))
    return fail(err, std::string(name) + ": input '" + x.name + "' is " + kutil::dtype_name(x.dtype) +
                         ", not float32/float16/bfloat16/int32/int64");
  if (y.dtype != 7)
    return fail(err, std::string(name) + ": output '" + y.name + "' is " + kutil::dtype_name(y.dtype) +
                         ", not int64");
  a.dtype = x.dtype;
  return kutil::keep_args(e, layer, a);
}

template <int SelectMin>
int launch_arg(const Engine&, const Layer& layer, const void* const* in, void* const* out, const LaunchContext& ctx,
               std::string* err) {
  const auto& st = kutil::args_of<red::ArgArgs>(layer);
  red::ArgArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(red::arg_reduce(a, ctx.stream, st.max_blocks), SelectMin ? "argmin" : "argmax", err);
}

const KernelDef kReduceDef = {kReduce, &prepare_reduce, &launch_reduce, &kutil::release_args<red::Args>};
const KernelDef kArgMaxDef = {"argmax", &prepare_arg<0>, &launch_arg<0>, &kutil::release_args<red::ArgArgs>};
const KernelDef kArgMinDef = {"argmin", &prepare_arg<1>, &launch_arg<1>, &kutil::release_args<red::ArgArgs>};
TP_REGISTER_KERNEL(kReduceDef);
TP_REGISTER_KERNEL(kArgMaxDef);
TP_REGISTER_KERNEL(kArgMinDef);

}  // namespace
}  // namespace tp
