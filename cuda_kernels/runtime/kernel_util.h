// Host-side helpers for the KernelDef glue of our own kernels (kernels_*.cpp): parameter reading with bounds
// checks, operand validation against the engine's tensor table, error sentences, launch geometry.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tp/engine.h"

namespace tp {
namespace kutil {

// Always returns 1 (a failing status), after writing `msg` into *err.
int fail(std::string* err, const std::string& msg);

// "float32", "float16", "int64", ... for messages.
std::string dtype_name(int32_t dtype);
// "[2,3,4]"
std::string dims_str(const std::vector<int64_t>& dims);

// Reads layer.ints in order; the first read past the end (or a failed check) sets ok = false and remembers why.
class IntReader {
 public:
  IntReader(const std::vector<int64_t>& v, const char* kernel) : v_(v), kernel_(kernel) {}
  int64_t next(const char* what);
  // Reads a value that must lie in [lo, hi].
  int64_t next_in(const char* what, int64_t lo, int64_t hi);
  void next_n(const char* what, int64_t n, std::vector<int64_t>* out);
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  // True when every int was consumed; otherwise records the mismatch.
  bool done();
  const std::string& error() const { return error_; }

 private:
  const std::vector<int64_t>& v_;
  const char* kernel_;
  size_t pos_ = 0;
  bool ok_ = true;
  std::string error_;
};

// Checks the counts of inputs (present, i.e. >= 0) and outputs. `optional` trailing inputs may be -1.
bool check_arity(const Layer& layer, const char* kernel, size_t n_in_min, size_t n_in_max, size_t n_out,
                 std::string* err);
// The tensor of layer input/output i (must exist).
const TensorDesc& in_tensor(const Engine& e, const Layer& layer, size_t i);
const TensorDesc& out_tensor(const Engine& e, const Layer& layer, size_t i);
bool dtype_in(int32_t dtype, std::initializer_list<int32_t> allowed);

// Number of multiprocessors of a device (cached); 0 when it cannot be queried.
int sm_count(int device);
// Grid-stride kernels launch at most this many blocks.
long long max_blocks(int device);

// Turns a CUDA launch status into the kernel's status (0) or a sentence.
int launch_status(cudaError_t st, const char* kernel, std::string* err);

long long product(const std::vector<int64_t>& v);

// The usual layer state of our kernels: the launch arguments prepared once (pointers filled at launch).
template <typename A>
struct ArgsState {
  A args;
  long long max_blocks = 0;
};

template <typename A>
void release_args(Layer& layer) {
  delete static_cast<ArgsState<A>*>(layer.state);
  layer.state = nullptr;
}

// Moves `args` into a new state on the layer.
template <typename A>
int keep_args(Engine& e, Layer& layer, const A& args) {
  auto* st = new ArgsState<A>();
  st->args = args;
  st->max_blocks = max_blocks(e.device());
  layer.state = st;
  return 0;
}

template <typename A>
const ArgsState<A>& args_of(const Layer& layer) {
  return *static_cast<const ArgsState<A>*>(layer.state);
}

}  // namespace kutil
}  // namespace tp
