// Host-side helpers for the KernelDef glue (see kernel_util.h).
#include "kernel_util.h"

#include <mutex>

#include "tp/onnx_dtype.h"

namespace tp {
namespace kutil {

int fail(std::string* err, const std::string& msg) {
  if (err) *err = msg;
  return 1;
}

std::string dtype_name(int32_t t) {
  const onnx::DtypeInfo* d = onnx::dtype_info(t);
  return d ? d->name : "dtype " + std::to_string(t);
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

int64_t IntReader::next(const char* what) {
  if (!ok_) return 0;
  if (pos_ >= v_.size()) {
    ok_ = false;
    error_ = std::string(kernel_) + ": the integer parameters end before '" + what + "' (" +
             std::to_string(v_.size()) + " given)";
    return 0;
  }
  return v_[pos_++];
}

int64_t IntReader::next_in(const char* what, int64_t lo, int64_t hi) {
  const int64_t x = next(what);
  if (ok_ && (x < lo || x > hi)) {
    ok_ = false;
    error_ = std::string(kernel_) + ": parameter '" + what + "' is " + std::to_string(x) + ", outside [" +
             std::to_string(lo) + ", " + std::to_string(hi) + "]";
  }
  return x;
}

void IntReader::next_n(const char* what, int64_t n, std::vector<int64_t>* out) {
  out->clear();
  for (int64_t i = 0; i < n && ok_; ++i) out->push_back(next(what));
}

bool IntReader::done() {
  if (ok_ && pos_ != v_.size()) {
    ok_ = false;
    error_ = std::string(kernel_) + ": " + std::to_string(v_.size()) + " integer parameters given, " +
             std::to_string(pos_) + " expected";
  }
  return ok_;
}

bool check_arity(const Layer& layer, const char* kernel, size_t n_in_min, size_t n_in_max, size_t n_out,
                 std::string* err) {
  if (layer.inputs.size() < n_in_min || layer.inputs.size() > n_in_max) {
    fail(err, std::string(kernel) + ": " + std::to_string(layer.inputs.size()) + " inputs given, expected " +
                  (n_in_min == n_in_max ? std::to_string(n_in_min)
                                        : std::to_string(n_in_min) + ".." + std::to_string(n_in_max)));
    return false;
  }
  for (size_t i = 0; i < n_in_min; ++i)
    if (layer.inputs[i] < 0) {
      fail(err, std::string(kernel) + ": input " + std::to_string(i) + " is required but absent");
      return false;
    }
  if (layer.outputs.size() != n_out) {
    fail(err, std::string(kernel) + ": " + std::to_string(layer.outputs.size()) + " outputs given, expected " +
                  std::to_string(n_out));
    return false;
  }
  for (size_t i = 0; i < n_out; ++i)
    if (layer.outputs[i] < 0) {
      fail(err, std::string(kernel) + ": output " + std::to_string(i) + " is absent");
      return false;
    }
  return true;
}

const TensorDesc& in_tensor(const Engine& e, const Layer& layer, size_t i) { return e.tensor(layer.inputs[i]); }
const TensorDesc& out_tensor(const Engine& e, const Layer& layer, size_t i) { return e.tensor(layer.outputs[i]); }

bool dtype_in(int32_t dtype, std::initializer_list<int32_t> allowed) {
  for (int32_t a : allowed)
    if (a == dtype) return true;
  return false;
}

int sm_count(int device) {
  static std::mutex mu;
  static std::vector<int> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (device < 0) return 0;
  if (static_cast<size_t>(device) < cache.size() && cache[device] > 0) return cache[device];
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    n = 0;
  }
  if (static_cast<size_t>(device) >= cache.size()) cache.resize(device + 1, 0);
  cache[device] = n;
  return n;
}

long long max_blocks(int device) {
  const int sms = sm_count(device);
  return sms > 0 ? static_cast<long long>(sms) * 32 : 4096;
}

int launch_status(cudaError_t st, const char* kernel, std::string* err) {
  if (st == cudaSuccess) return 0;
  return fail(err, std::string(kernel) + ": kernel launch failed: " + cudaGetErrorString(st));
}

long long product(const std::vector<int64_t>& v) {
  long long p = 1;
  for (auto d : v) p *= d;
  return p;
}

}  // namespace kutil
}  // namespace tp
