// KernelDefs "copy", "copy_batch", "fill", "transpose", "pad", "gather", "gather_elements" (kernels/copy.cu,
// transpose.cu, pad.cu, gather.cu).
// Lowering: ep_trtpy/builder/lowering/movement.py. Elements are moved as raw 1, 2, 4 or 8 byte words; input and
// output element sizes must match (the dtypes may differ only by name, e.g. a view), except for a converting
// "transpose".
//
// "copy"       inputs [X], outputs [Y]
//              ints [ndim (0..12), dims[ndim], in_offset, in_strides[ndim], out_offset, out_strides[ndim]]
//              Y[out_offset + sum c_d*out_strides_d] = X[in_offset + sum c_d*in_strides_d] for every index c of
//              dims; offsets and strides in elements, input strides may be negative or 0 (Slice with negative
//              steps, Expand). Only the addressed elements of Y are written (Concat writes one slab per layer).
// "copy_batch" inputs [X_0 ..], outputs [Y_0 ..]: one launch for a whole Concat or Split
//              ints [nseg (1..32), nseg x (src, dst, rows, row_elems, src_offset, src_stride, dst_offset,
//              dst_stride)]   segment: rows r < rows of row_elems elements, Y_dst[dst_offset + r*dst_stride + i] =
//              X_src[src_offset + r*src_stride + i]; src / dst index the layer's inputs / outputs; all >= 0,
//              in elements (every tensor of the layer has one element size); segments must not write one element
//              twice.
// "fill"       inputs [], outputs [Y]
//              ints [value_bits]    every element of Y = the low element-size bytes of value_bits
// "transpose"  inputs [X], outputs [Y]
//              ints [ndim (0..8), in_dims[ndim], perm[ndim]]   Y dim d = X dim perm[d]; X contiguous with in_dims
//              X float32 and Y float16 / bfloat16 or the reverse: each element is converted (round to nearest even)
// "pad"        inputs [X], outputs [Y]
//              ints [mode, ndim (0..8), in_dims[ndim], out_dims[ndim], pads_begin[ndim], value_bits]
//              mode 0 constant (value_bits as for fill), 1 reflect, 2 edge; negative pads crop
// "gather"     inputs [data, indices (int32 or int64, any shape of n_idx elements)], outputs [Y]
//              ints [outer, axis, inner]   data [outer, axis, inner] -> Y [outer, n_idx, inner];
//              negative indices count from the end; an index outside [-axis, axis) writes zeros
#include <algorithm>

#include "../kernels/movement.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::fail;

int element_size(const Engine& e, const Layer& layer, const char* name, int* esize, std::string* err) {
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  const size_t ys = dtype_size(y.dtype);
  if (ys != 1 && ys != 2 && ys != 4 && ys != 8)
    return fail(err, std::string(name) + ": output '" + y.name + "' has unsupported element type " +
                         kutil::dtype_name(y.dtype));
  if (!layer.inputs.empty()) {
    const TensorDesc& x = kutil::in_tensor(e, layer, 0);
    if (dtype_size(x.dtype) != ys)
      return fail(err, std::string(name) + ": input '" + x.name + "' (" + kutil::dtype_name(x.dtype) +
                           ") and output '" + y.name + "' (" + kutil::dtype_name(y.dtype) +
                           ") have different element sizes");
  }
  *esize = static_cast<int>(ys);
  return 0;
}

// Every element addressed by offset + sum c_d * strides_d lies inside a tensor of `numel` elements.
bool in_bounds(long long numel, long long offset, const long long* dims, const long long* strides, int ndim) {
  long long lo = offset, hi = offset;
  for (int d = 0; d < ndim; ++d) {
    if (dims[d] == 0) return true;
    const long long span = (dims[d] - 1) * strides[d];
    if (span < 0) lo += span; else hi += span;
  }
  return lo >= 0 && hi < numel;
}

// ------------------------------------------------------------------------------------------------------ copy --
constexpr const char* kCopy = "copy";

int prepare_copy(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kCopy, 1, 1, 1, err)) return 1;
  mv::CopyArgs a;
  if (int rc = element_size(e, layer, kCopy, &a.esize, err)) return rc;
  kutil::IntReader r(layer.ints, kCopy);
  a.ndim = static_cast<int>(r.next_in("ndim", 0, mv::kCopyMaxDims));
  for (int d = 0; d < a.ndim; ++d) a.dims[d] = r.next_in("dims", 0, INT64_MAX);
  a.in_off = r.next("in_offset");
  for (int d = 0; d < a.ndim; ++d) a.in_strides[d] = r.next("in_strides");
  a.out_off = r.next("out_offset");
  for (int d = 0; d < a.ndim; ++d) a.out_strides[d] = r.next("out_strides");
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (!in_bounds(x.numel(), a.in_off, a.dims, a.in_strides, a.ndim))
    return fail(err, std::string(kCopy) + ": the read pattern leaves input '" + x.name + "' " +
                         kutil::dims_str(x.dims));
  if (!in_bounds(y.numel(), a.out_off, a.dims, a.out_strides, a.ndim))
    return fail(err, std::string(kCopy) + ": the write pattern leaves output '" + y.name + "' " +
                         kutil::dims_str(y.dims));
  return kutil::keep_args(e, layer, a);
}

int launch_copy(const Engine&, const Layer& layer, const void* const* in, void* const* out, const LaunchContext& ctx,
                std::string* err) {
  const auto& st = kutil::args_of<mv::CopyArgs>(layer);
  mv::CopyArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(mv::copy(a, ctx.stream, st.max_blocks), kCopy, err);
}

// ------------------------------------------------------------------------------------------------ copy_batch --
constexpr const char* kCopyBatch = "copy_batch";

struct BatchSpec {
  int src = 0, dst = 0;
  long long rows = 0, row_elems = 0, src_off = 0, src_stride = 0, dst_off = 0, dst_stride = 0;
};
struct CopyBatchState {
  int esize = 0, n = 0;
  BatchSpec spec[mv::kMaxSegments];
};

// Rows of `row_elems` elements at offset + r * stride, r < rows, lie inside `numel` elements.
bool rows_fit(long long numel, long long offset, long long rows, long long row_elems, long long stride) {
  if (rows == 0 || row_elems == 0) return true;
  return offset + (rows - 1) * stride + row_elems <= numel;
}

int prepare_copy_batch(Engine& e, Layer& layer, std::string* err) {
  if (layer.inputs.empty() || layer.outputs.empty())
    return fail(err, std::string(kCopyBatch) + ": needs at least one input and one output");
  CopyBatchState st;
  st.esize = static_cast<int>(dtype_size(kutil::out_tensor(e, layer, 0).dtype));
  for (size_t i = 0; i < layer.inputs.size() + layer.outputs.size(); ++i) {
    const bool is_in = i < layer.inputs.size();
    if (is_in && layer.inputs[i] < 0) return fail(err, std::string(kCopyBatch) + ": input " + std::to_string(i) +
                                                           " is absent");
    const TensorDesc& t = is_in ? kutil::in_tensor(e, layer, i) : kutil::out_tensor(e, layer, i - layer.inputs.size());
    if (static_cast<int>(dtype_size(t.dtype)) != st.esize || !(st.esize == 1 || st.esize == 2 || st.esize == 4 ||
                                                               st.esize == 8))
      return fail(err, std::string(kCopyBatch) + ": tensor '" + t.name + "' (" + kutil::dtype_name(t.dtype) +
                           ") does not share one element size of 1, 2, 4 or 8 bytes with the layer's first output");
  }
  kutil::IntReader r(layer.ints, kCopyBatch);
  st.n = static_cast<int>(r.next_in("nseg", 1, mv::kMaxSegments));
  for (int k = 0; k < st.n && r.ok(); ++k) {
    BatchSpec& g = st.spec[k];
    g.src = static_cast<int>(r.next_in("src", 0, static_cast<int64_t>(layer.inputs.size()) - 1));
    g.dst = static_cast<int>(r.next_in("dst", 0, static_cast<int64_t>(layer.outputs.size()) - 1));
    g.rows = r.next_in("rows", 0, INT64_MAX);
    g.row_elems = r.next_in("row_elems", 0, INT64_MAX);
    g.src_off = r.next_in("src_offset", 0, INT64_MAX);
    g.src_stride = r.next_in("src_stride", 0, INT64_MAX);
    g.dst_off = r.next_in("dst_offset", 0, INT64_MAX);
    g.dst_stride = r.next_in("dst_stride", 0, INT64_MAX);
    if (!r.ok()) break;
    const TensorDesc& x = kutil::in_tensor(e, layer, g.src);
    const TensorDesc& y = kutil::out_tensor(e, layer, g.dst);
    if (!rows_fit(x.numel(), g.src_off, g.rows, g.row_elems, g.src_stride))
      return fail(err, std::string(kCopyBatch) + ": segment " + std::to_string(k) + " reads past input '" + x.name +
                           "' " + kutil::dims_str(x.dims));
    if (!rows_fit(y.numel(), g.dst_off, g.rows, g.row_elems, g.dst_stride))
      return fail(err, std::string(kCopyBatch) + ": segment " + std::to_string(k) + " writes past output '" +
                           y.name + "' " + kutil::dims_str(y.dims));
  }
  if (!r.done()) return fail(err, r.error());
  return kutil::keep_args(e, layer, st);
}

int launch_copy_batch(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                      const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<CopyBatchState>(layer).args;
  mv::CopyBatchArgs a;
  a.n = st.n;
  const long long es = st.esize;
  for (int k = 0; k < st.n; ++k) {
    const BatchSpec& g = st.spec[k];
    a.seg[k].src = static_cast<const char*>(in[g.src]) + g.src_off * es;
    a.seg[k].dst = static_cast<char*>(out[g.dst]) + g.dst_off * es;
    a.seg[k].rows = g.rows;
    a.seg[k].row_bytes = g.row_elems * es;
    a.seg[k].src_stride = g.src_stride * es;
    a.seg[k].dst_stride = g.dst_stride * es;
  }
  return kutil::launch_status(mv::copy_batch(a, ctx.stream, kutil::args_of<CopyBatchState>(layer).max_blocks),
                              kCopyBatch, err);
}

// ------------------------------------------------------------------------------------------------------ fill --
constexpr const char* kFill = "fill";

struct FillArgs {
  int esize = 4;
  long long n = 0;
  unsigned long long bits = 0;
};

int prepare_fill(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kFill, 0, 0, 1, err)) return 1;
  FillArgs a;
  if (int rc = element_size(e, layer, kFill, &a.esize, err)) return rc;
  kutil::IntReader r(layer.ints, kFill);
  a.bits = static_cast<unsigned long long>(r.next("value_bits"));
  if (!r.done()) return fail(err, r.error());
  a.n = kutil::out_tensor(e, layer, 0).numel();
  return kutil::keep_args(e, layer, a);
}

int launch_fill(const Engine&, const Layer& layer, const void* const*, void* const* out, const LaunchContext& ctx,
                std::string* err) {
  const auto& st = kutil::args_of<FillArgs>(layer);
  return kutil::launch_status(mv::fill(out[0], st.args.esize, st.args.n, st.args.bits, ctx.stream, st.max_blocks),
                              kFill, err);
}

// ------------------------------------------------------------------------------------------------- transpose --
constexpr const char* kTranspose = "transpose";

// float32 -> float16 / bfloat16 or back: a Cast fused into the transpose.
bool converts(int from, int to) {
  return (from == 1 && (to == 10 || to == 16)) || ((from == 10 || from == 16) && to == 1);
}

int prepare_transpose(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kTranspose, 1, 1, 1, err)) return 1;
  mv::TransposeArgs a;
  const int from = kutil::in_tensor(e, layer, 0).dtype, to = kutil::out_tensor(e, layer, 0).dtype;
  if (converts(from, to)) {
    a.in_dtype = from;
    a.out_dtype = to;
    a.esize = static_cast<int>(dtype_size(to));
  } else if (int rc = element_size(e, layer, kTranspose, &a.esize, err)) {
    return rc;
  }
  kutil::IntReader r(layer.ints, kTranspose);
  a.ndim = static_cast<int>(r.next_in("ndim", 0, mv::kMaxDims));
  long long n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= (a.in_dims[d] = r.next_in("in_dims", 0, INT64_MAX));
  std::vector<bool> seen(a.ndim, false);
  for (int d = 0; d < a.ndim; ++d) {
    a.perm[d] = static_cast<int>(r.next_in("perm", 0, a.ndim - 1));
    if (r.ok() && seen[a.perm[d]]) return fail(err, std::string(kTranspose) + ": perm repeats an axis");
    if (r.ok()) seen[a.perm[d]] = true;
  }
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (x.numel() != n || y.numel() != n)
    return fail(err, std::string(kTranspose) + ": input " + kutil::dims_str(x.dims) + " and output " +
                         kutil::dims_str(y.dims) + " must have " + std::to_string(n) + " elements");
  return kutil::keep_args(e, layer, a);
}

int launch_transpose(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                     const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<mv::TransposeArgs>(layer);
  mv::TransposeArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(mv::transpose(a, ctx.stream, st.max_blocks), kTranspose, err);
}

// ------------------------------------------------------------------------------------------------------- pad --
constexpr const char* kPad = "pad";

int prepare_pad(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kPad, 1, 1, 1, err)) return 1;
  mv::PadArgs a;
  if (int rc = element_size(e, layer, kPad, &a.esize, err)) return rc;
  kutil::IntReader r(layer.ints, kPad);
  a.mode = static_cast<int>(r.next_in("mode", 0, 2));
  a.ndim = static_cast<int>(r.next_in("ndim", 0, mv::kMaxDims));
  long long n_in = 1, n_out = 1;
  for (int d = 0; d < a.ndim; ++d) n_in *= (a.in_dims[d] = r.next_in("in_dims", 0, INT64_MAX));
  for (int d = 0; d < a.ndim; ++d) n_out *= (a.out_dims[d] = r.next_in("out_dims", 0, INT64_MAX));
  for (int d = 0; d < a.ndim; ++d) a.pads_begin[d] = r.next("pads_begin");
  a.bits = static_cast<unsigned long long>(r.next("value_bits"));
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (x.numel() != n_in || y.numel() != n_out)
    return fail(err, std::string(kPad) + ": input " + kutil::dims_str(x.dims) + " / output " +
                         kutil::dims_str(y.dims) + " do not match the parameters' " + std::to_string(n_in) + " / " +
                         std::to_string(n_out) + " elements");
  if (a.mode != 0 && n_out > 0)
    for (int d = 0; d < a.ndim; ++d)
      if (a.in_dims[d] == 0)
        return fail(err, std::string(kPad) + ": reflect/edge padding of an empty dim " + std::to_string(d));
  return kutil::keep_args(e, layer, a);
}

int launch_pad(const Engine&, const Layer& layer, const void* const* in, void* const* out, const LaunchContext& ctx,
               std::string* err) {
  const auto& st = kutil::args_of<mv::PadArgs>(layer);
  mv::PadArgs a = st.args;
  a.in = in[0];
  a.out = out[0];
  return kutil::launch_status(mv::pad(a, ctx.stream, st.max_blocks), kPad, err);
}

// ---------------------------------------------------------------------------------------------------- gather --
constexpr const char* kGather = "gather";

int prepare_gather(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kGather, 2, 2, 1, err)) return 1;
  mv::GatherArgs a;
  if (int rc = element_size(e, layer, kGather, &a.esize, err)) return rc;
  kutil::IntReader r(layer.ints, kGather);
  a.outer = r.next_in("outer", 0, INT64_MAX);
  a.axis = r.next_in("axis", 0, INT64_MAX);
  a.inner = r.next_in("inner", 0, INT64_MAX);
  if (!r.done()) return fail(err, r.error());
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& idx = kutil::in_tensor(e, layer, 1);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (idx.dtype != 6 && idx.dtype != 7)
    return fail(err, std::string(kGather) + ": indices '" + idx.name + "' are " + kutil::dtype_name(idx.dtype) +
                         ", not int32/int64");
  a.idx64 = idx.dtype == 7;
  a.n_idx = idx.numel();
  if (x.numel() != a.outer * a.axis * a.inner)
    return fail(err, std::string(kGather) + ": data '" + x.name + "' " + kutil::dims_str(x.dims) +
                         " does not have outer*axis*inner elements");
  if (y.numel() != a.outer * a.n_idx * a.inner)
    return fail(err, std::string(kGather) + ": output '" + y.name + "' " + kutil::dims_str(y.dims) +
                         " does not have outer*n_idx*inner elements");
  return kutil::keep_args(e, layer, a);
}

int launch_gather(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                  const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<mv::GatherArgs>(layer);
  mv::GatherArgs a = st.args;
  a.data = in[0];
  a.indices = in[1];
  a.out = out[0];
  return kutil::launch_status(mv::gather(a, ctx.stream, st.max_blocks), kGather, err);
}

// ------------------------------------------------------------------------------------------- gather_elements --
// "gather_elements"  inputs [data, indices (int32 or int64)], outputs [Y] (indices' shape, data's dtype)
//                    ints [rank (1..8), axis, data_dims[rank], index_dims[rank]]; an index outside the axis
//                    (after one wrap of a negative value) gives 0, as "gather" does
constexpr const char* kGatherElements = "gather_elements";

int prepare_gather_elements(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kGatherElements, 2, 2, 1, err)) return 1;
  mv::GatherElementsArgs a;
  if (int rc = element_size(e, layer, kGatherElements, &a.esize, err)) return rc;
  kutil::IntReader r(layer.ints, kGatherElements);
  a.rank = static_cast<int>(r.next_in("rank", 1, mv::kMaxGatherRank));
  a.axis = static_cast<int>(r.next_in("axis", 0, a.rank - 1));
  long long nd = 1, ni = 1;
  for (int d = 0; d < a.rank; ++d) nd *= (a.data_dims[d] = r.next_in("data_dims", 0, INT64_MAX));
  for (int d = 0; d < a.rank; ++d) ni *= (a.idx_dims[d] = r.next_in("index_dims", 0, INT64_MAX));
  if (!r.done()) return fail(err, r.error());
  for (int d = 0; d < a.rank; ++d)
    if (d != a.axis && a.idx_dims[d] > a.data_dims[d])
      return fail(err, std::string(kGatherElements) + ": index dim " + std::to_string(d) + " (" +
                           std::to_string(a.idx_dims[d]) + ") exceeds the data's (" + std::to_string(a.data_dims[d]) +
                           ")");
  const TensorDesc& x = kutil::in_tensor(e, layer, 0);
  const TensorDesc& idx = kutil::in_tensor(e, layer, 1);
  const TensorDesc& y = kutil::out_tensor(e, layer, 0);
  if (idx.dtype != 6 && idx.dtype != 7)
    return fail(err, std::string(kGatherElements) + ": indices '" + idx.name + "' are " +
                         kutil::dtype_name(idx.dtype) + ", not int32/int64");
  a.idx64 = idx.dtype == 7;
  if (x.numel() != nd || idx.numel() != ni || y.numel() != ni)
    return fail(err, std::string(kGatherElements) + ": data " + kutil::dims_str(x.dims) + ", indices " +
                         kutil::dims_str(idx.dims) + " and output " + kutil::dims_str(y.dims) +
                         " do not match the parameters");
  return kutil::keep_args(e, layer, a);
}

int launch_gather_elements(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                           const LaunchContext& ctx, std::string* err) {
  const auto& st = kutil::args_of<mv::GatherElementsArgs>(layer);
  mv::GatherElementsArgs a = st.args;
  a.data = in[0];
  a.indices = in[1];
  a.out = out[0];
  return kutil::launch_status(mv::gather_elements(a, ctx.stream, st.max_blocks), kGatherElements, err);
}

const KernelDef kCopyDef = {kCopy, &prepare_copy, &launch_copy, &kutil::release_args<mv::CopyArgs>};
const KernelDef kCopyBatchDef = {kCopyBatch, &prepare_copy_batch, &launch_copy_batch,
                                 &kutil::release_args<CopyBatchState>};
TP_REGISTER_KERNEL(kCopyBatchDef);
const KernelDef kFillDef = {kFill, &prepare_fill, &launch_fill, &kutil::release_args<FillArgs>};
const KernelDef kTransposeDef = {kTranspose, &prepare_transpose, &launch_transpose,
                                 &kutil::release_args<mv::TransposeArgs>};
const KernelDef kPadDef = {kPad, &prepare_pad, &launch_pad, &kutil::release_args<mv::PadArgs>};
const KernelDef kGatherDef = {kGather, &prepare_gather, &launch_gather, &kutil::release_args<mv::GatherArgs>};
TP_REGISTER_KERNEL(kCopyDef);
TP_REGISTER_KERNEL(kFillDef);
TP_REGISTER_KERNEL(kTransposeDef);
TP_REGISTER_KERNEL(kPadDef);
TP_REGISTER_KERNEL(kGatherDef);
const KernelDef kGatherElementsDef = {kGatherElements, &prepare_gather_elements, &launch_gather_elements,
                                      &kutil::release_args<mv::GatherElementsArgs>};
TP_REGISTER_KERNEL(kGatherElementsDef);

}  // namespace
}  // namespace tp
