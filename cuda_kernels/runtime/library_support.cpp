// Library handles, device guard, status messages and versions for the library-backed kernels.
#include "tp/library_support.h"

#include <string>

namespace tp {

using lib::DeviceGuard;

Handles::~Handles() {
  // Destroy on the device the handles were created on; errors cannot be reported from a destructor.
  if (lt_ == nullptr && dnn_ == nullptr) return;
  DeviceGuard guard(device_);
  if (lt_ != nullptr) cublasLtDestroy(lt_);
  if (dnn_ != nullptr) cudnnDestroy(dnn_);
}

int Handles::cublaslt(cublasLtHandle_t* out, std::string* err) {
  std::lock_guard<std::mutex> lock(mu_);
  if (lt_ == nullptr) {
    DeviceGuard guard(device_);
    TP_REQUIRE(guard.ok(), guard.error());
    cublasLtHandle_t h = nullptr;
    TP_TRY_CUBLAS(cublasLtCreate(&h));
    lt_ = h;
  }
  *out = lt_;
  return 0;
}

int Handles::cudnn(cudnnHandle_t* out, std::string* err) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dnn_ == nullptr) {
    DeviceGuard guard(device_);
    TP_REQUIRE(guard.ok(), guard.error());
    cudnnHandle_t h = nullptr;
    TP_TRY_CUDNN(cudnnCreate(&h));
    dnn_ = h;
  }
  *out = dnn_;
  return 0;
}

namespace lib {

DeviceGuard::DeviceGuard(int device) {
  cudaError_t e = cudaGetDevice(&prev_);
  if (e != cudaSuccess) {
    cudaGetLastError();
    prev_ = -1;
    error_ = cuda_message("cudaGetDevice", e);
    return;
  }
  if (prev_ != device) {
    e = cudaSetDevice(device);
    if (e != cudaSuccess) {
      cudaGetLastError();
      error_ = cuda_message(("cudaSetDevice(" + std::to_string(device) + ")").c_str(), e);
      return;
    }
  }
  ok_ = true;
}

DeviceGuard::~DeviceGuard() {
  int cur = -1;
  if (prev_ >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev_) cudaSetDevice(prev_);
}

std::string cuda_message(const char* what, cudaError_t e) {
  return std::string(what) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

std::string cublas_message(const char* what, cublasStatus_t s) {
  return std::string(what) + " failed: " + cublasLtGetStatusName(s) + " (" + cublasLtGetStatusString(s) + ")";
}

std::string cudnn_message(const char* what, cudnnStatus_t s) {
  return std::string(what) + " failed: " + cudnnGetErrorString(s) + " (status " + std::to_string(int(s)) + ")";
}

LibraryVersions library_versions() {
  LibraryVersions v;
  v.cudnn = cudnnGetVersion();
  v.cudnn_cudart = cudnnGetCudartVersion();
  v.cublaslt = cublasLtGetVersion();
  v.cublaslt_cudart = cublasLtGetCudartVersion();
  if (cudaRuntimeGetVersion(&v.cudart) != cudaSuccess) v.cudart = 0;
  if (cudaDriverGetVersion(&v.driver) != cudaSuccess) v.driver = 0;
  cudaGetLastError();
  return v;
}

}  // namespace lib
}  // namespace tp
