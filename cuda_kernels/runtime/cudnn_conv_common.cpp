// Shared pieces of the cuDNN-backed convolution kernels (see cudnn_conv_common.h).
#include "cudnn_conv_common.h"

#include <algorithm>
#include <limits>

#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
namespace lib {

int search_buffers(Engine& engine, cudnnHandle_t h, size_t in0_bytes, size_t in1_bytes, size_t out_bytes,
                   size_t workspace_bytes, SearchBuffers* b, std::string* err) {
  b->in0 = engine.scratch_buffer(0, in0_bytes);
  b->in1 = engine.scratch_buffer(1, in1_bytes);
  b->out = engine.scratch_buffer(2, out_bytes);
  b->workspace = workspace_bytes ? engine.scratch_buffer(3, workspace_bytes) : nullptr;
  TP_REQUIRE(b->in0 && b->in1 && b->out && (b->workspace || !workspace_bytes),
             std::string("cannot allocate scratch buffers for algorithm search: ") + tp_last_error());
  TP_TRY_CUDA(cudaMemset(b->in0, 0, in0_bytes));
  TP_TRY_CUDA(cudaMemset(b->in1, 0, in1_bytes));
  TP_TRY_CUDNN(cudnnSetStream(h, nullptr));
  return 0;
}

CudnnConvDescs::~CudnnConvDescs() {
  if (x) cudnnDestroyTensorDescriptor(x);
  if (y) cudnnDestroyTensorDescriptor(y);
  if (bias) cudnnDestroyTensorDescriptor(bias);
  if (w) cudnnDestroyFilterDescriptor(w);
  if (conv) cudnnDestroyConvolutionDescriptor(conv);
  if (act) cudnnDestroyActivationDescriptor(act);
}

std::vector<int64_t> ConvGeometry::lift(const std::vector<int64_t>& spatial, int64_t unit) const {
  std::vector<int64_t> out;
  if (nsp == 1) out.push_back(unit);
  out.insert(out.end(), spatial.begin(), spatial.end());
  return out;
}

int to_int_params(const std::vector<int64_t>& in, std::vector<int>* out, const std::string& what, std::string* err) {
  out->clear();
  for (int64_t v : in) {
    TP_REQUIRE(v >= 0 && v <= std::numeric_limits<int>::max(), what + " value " + std::to_string(v) +
                                                                   " is out of cuDNN's int range");
    out->push_back(static_cast<int>(v));
  }
  return 0;
}

int to_int_dims(const std::vector<int64_t>& in, std::vector<int>* out, const std::string& what, std::string* err) {
  out->clear();
  int64_t total = 1;
  for (int64_t v : in) {
    TP_REQUIRE(v >= 0 && v <= std::numeric_limits<int>::max(), what + " dimension " + std::to_string(v) +
                                                                   " is out of cuDNN's int range");
    out->push_back(static_cast<int>(v));
    total *= v;
  }
  TP_REQUIRE(total <= std::numeric_limits<int>::max(),
             what + " has " + std::to_string(total) + " elements, more than cuDNN's legacy API addresses");
  return 0;
}

int set_tensor_nd(cudnnTensorDescriptor_t* d, cudnnDataType_t type, const std::vector<int>& dims, std::string* err) {
  if (*d == nullptr) TP_TRY_CUDNN(cudnnCreateTensorDescriptor(d));
  std::vector<int> strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i)
    strides[static_cast<size_t>(i)] = strides[static_cast<size_t>(i) + 1] * std::max(dims[static_cast<size_t>(i) + 1], 1);
  TP_TRY_CUDNN(cudnnSetTensorNdDescriptor(*d, type, static_cast<int>(dims.size()), dims.data(), strides.data()));
  return 0;
}

int set_filter_nd(cudnnFilterDescriptor_t* d, cudnnDataType_t type, const std::vector<int>& dims, std::string* err) {
  if (*d == nullptr) TP_TRY_CUDNN(cudnnCreateFilterDescriptor(d));
  TP_TRY_CUDNN(cudnnSetFilterNdDescriptor(*d, type, CUDNN_TENSOR_NCHW, static_cast<int>(dims.size()), dims.data()));
  return 0;
}

int set_conv_nd(cudnnConvolutionDescriptor_t* d, const std::vector<int>& pads, const std::vector<int>& strides,
                const std::vector<int>& dilations, int group, cudnnMathType_t math, std::string* err) {
  if (*d == nullptr) TP_TRY_CUDNN(cudnnCreateConvolutionDescriptor(d));
  TP_TRY_CUDNN(cudnnSetConvolutionNdDescriptor(*d, static_cast<int>(pads.size()), pads.data(), strides.data(),
                                               dilations.data(), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  TP_TRY_CUDNN(cudnnSetConvolutionGroupCount(*d, group));
  TP_TRY_CUDNN(cudnnSetConvolutionMathType(*d, math));
  return 0;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

int set_forward_descriptors(CudnnConvDescs* d, int onnx_dtype, bool tf32, const ForwardConvShape& f,
                            const char* x_what, const char* y_what, std::string* err) {
  ConvGeometry g;
  g.nsp = static_cast<int>(f.x_sp.size());
  std::vector<int64_t> xd = {f.n, f.c}, wd = {f.k, f.cg}, yd = {f.n, f.k};
  for (int64_t v : g.lift(f.x_sp, 1)) xd.push_back(v);
  for (int64_t v : g.lift(f.k_sp, 1)) wd.push_back(v);
  for (int64_t v : g.lift(f.y_sp, 1)) yd.push_back(v);
  std::vector<int> xi, wi, yi, pads, strides, dils;
  if (to_int_dims(xd, &xi, x_what, err) || to_int_dims(wd, &wi, "W", err) || to_int_dims(yd, &yi, y_what, err) ||
      to_int_params(g.lift(f.pads, 0), &pads, "pad", err) || to_int_params(g.lift(f.strides, 1), &strides, "stride", err) ||
      to_int_params(g.lift(f.dilations, 1), &dils, "dilation", err))
    return 1;
  const cudnnDataType_t type = cudnn_type(onnx_dtype);
  if (set_tensor_nd(&d->x, type, xi, err) || set_filter_nd(&d->w, type, wi, err) || set_tensor_nd(&d->y, type, yi, err) ||
      set_conv_nd(&d->conv, pads, strides, dils, static_cast<int>(f.group), math_policy(onnx_dtype, tf32), err))
    return 1;
  std::vector<int> got(yi.size(), 0);
  TP_TRY_CUDNN(cudnnGetConvolutionNdForwardOutputDim(d->conv, d->x, d->w, static_cast<int>(got.size()), got.data()));
  TP_REQUIRE(got == yi, std::string("cuDNN's forward convolution of ") + x_what + " gives another shape than " +
                            y_what + " " + join(yd));
  return 0;
}

}  // namespace lib
}  // namespace tp
