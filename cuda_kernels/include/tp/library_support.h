// Support for the library-backed kernels (cuBLASLt, cuDNN) and the engine executor: per-engine library handles,
// a current-device guard, status-to-message helpers and the library versions.
//
// Internal to the runtime (libep_trtpy_runtime); only library_versions() is exported for the pybind11 module.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <mutex>
#include <string>

#include "tp/runtime_api.h"

namespace tp {

// Library handles shared by the layers of one engine. Each handle is created on first use, on the engine's
// device (the caller makes that device current, e.g. with DeviceGuard). cuDNN handles carry a stream: kernels
// call cudnnSetStream(handle, ctx.stream) before every cuDNN call; cuBLASLt takes the stream per call.
struct Handles {
  explicit Handles(int device) : device_(device) {}
  ~Handles();
  Handles(const Handles&) = delete;
  Handles& operator=(const Handles&) = delete;

  int cublaslt(cublasLtHandle_t* out, std::string* err);  // 0 on success, else *err is set
  int cudnn(cudnnHandle_t* out, std::string* err);

 private:
  int device_;
  std::mutex mu_;
  cublasLtHandle_t lt_ = nullptr;
  cudnnHandle_t dnn_ = nullptr;
};

// Runtime-internal helpers of the library kernels and the executor live in tp::lib (kept apart from other kernels'
// helpers in tp).
namespace lib {

// Makes `device` current for the scope and restores the previous device on exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  int prev_ = -1;
  bool ok_ = false;
  std::string error_;
};

// "what: cudaErrorX (description)" and friends.
std::string cuda_message(const char* what, cudaError_t e);
std::string cublas_message(const char* what, cublasStatus_t s);
std::string cudnn_message(const char* what, cudnnStatus_t s);

struct LibraryVersions {
  size_t cudnn = 0;          // cudnnGetVersion(), e.g. 92400
  size_t cudnn_cudart = 0;   // CUDA runtime cuDNN was built against
  size_t cublaslt = 0;       // cublasLtGetVersion(), e.g. 130101
  size_t cublaslt_cudart = 0;
  int cudart = 0;            // cudaRuntimeGetVersion() of our statically linked runtime, e.g. 13000
  int driver = 0;            // cudaDriverGetVersion(); 0 without a driver
};
// Never fails and needs no GPU.
TP_API LibraryVersions library_versions();

}  // namespace lib
}  // namespace tp

// Status checks for kernel code with a `std::string* err` in scope: set *err and return 1 from the function.
#define TP_TRY_CUDA(call)                                          \
  do {                                                             \
    cudaError_t tp_e_ = (call);                                    \
    if (tp_e_ != cudaSuccess) {                                    \
      if (err) *err = ::tp::lib::cuda_message(#call, tp_e_);            \
      return 1;                                                    \
    }                                                              \
  } while (0)
#define TP_TRY_CUBLAS(call)                                        \
  do {                                                             \
    cublasStatus_t tp_s_ = (call);                                 \
    if (tp_s_ != CUBLAS_STATUS_SUCCESS) {                          \
      if (err) *err = ::tp::lib::cublas_message(#call, tp_s_);          \
      return 1;                                                    \
    }                                                              \
  } while (0)
#define TP_TRY_CUDNN(call)                                         \
  do {                                                             \
    cudnnStatus_t tp_s_ = (call);                                  \
    if (tp_s_ != CUDNN_STATUS_SUCCESS) {                           \
      if (err) *err = ::tp::lib::cudnn_message(#call, tp_s_);           \
      return 1;                                                    \
    }                                                              \
  } while (0)
#define TP_REQUIRE(cond, message)                                  \
  do {                                                             \
    if (!(cond)) {                                                 \
      if (err) *err = (message);                                   \
      return 1;                                                    \
    }                                                              \
  } while (0)
