// CUDA device helpers for the shim and the bindings: discovery, a caching allocator, copies, streams, events.
//
// All CUDA runtime calls of the process's native code go through libep_trtpy_runtime (cudart is linked
// statically once, here), so the shim itself needs no CUDA linkage.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tp/runtime_api.h"

namespace {

bool fail(const char* what, cudaError_t e) {
  std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  tp_set_last_error(msg.c_str());
  return false;
}

#define TP_CUDA_OK(call) ((call) == cudaSuccess)

// Restores the calling thread's current device on scope exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    ok_ = cudaGetDevice(&prev_) == cudaSuccess;
    if (ok_ && prev_ != device) ok_ = cudaSetDevice(device) == cudaSuccess;
  }
  ~DeviceGuard() {
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_ && prev_ >= 0) cudaSetDevice(prev_);
  }
  bool ok() const { return ok_; }

 private:
  int prev_ = -1;
  bool ok_ = false;
};

// Size-bucketed caching allocator, one per device. Blocks are rounded up (512 B granularity below 1 MiB,
// 2 MiB above) and kept on a free list when released; reuse is safe for work ordered on one stream.
class CachingPool {
 public:
  void* alloc(int device, size_t bytes) {
    size_t size = round(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(size);
      // Reuse a cached block of the same size class, or up to 2x larger for small blocks.
      if (it != free_.end() && it->first <= std::max(size * 2, size + (size_t(2) << 20)) && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        size_t got = it->first;
        if (it->second.empty()) free_.erase(it);
        used_[p] = got;
        in_use_ += got;
        peak_ = std::max(peak_, in_use_);
        return p;
      }
    }
    DeviceGuard guard(device);
    if (!guard.ok()) {
      tp_set_last_error("cannot select CUDA device");
      return nullptr;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
      cudaGetLastError();
      release_cached(device);  // give cached blocks back and try once more
      e = cudaMalloc(&p, size);
      if (e != cudaSuccess) {
        cudaGetLastError();
        char buf[128];
        std::snprintf(buf, sizeof buf, "cudaMalloc of %zu bytes on device %d", size, device);
        fail(buf, e);
        return nullptr;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    used_[p] = size;
    in_use_ += size;
    reserved_ += size;
    peak_ = std::max(peak_, in_use_);
    return p;
  }

  void free(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = used_.find(p);
    if (it == used_.end()) return;  // not ours: ignore rather than corrupt
    in_use_ -= it->second;
    free_[it->second].push_back(p);
    used_.erase(it);
  }

  void release_cached(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(device);
    for (auto& kv : free_)
      for (void* p : kv.second) {
        cudaFree(p);
        reserved_ -= kv.first;
      }
    free_.clear();
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = in_use_;
  }

  void stats(size_t* in_use, size_t* peak, size_t* reserved) {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_use) *in_use = in_use_;
    if (peak) *peak = peak_;
    if (reserved) *reserved = reserved_;
  }

 private:
  static size_t round(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t small = 512, large = size_t(2) << 20;
    if (bytes < (size_t(1) << 20)) return (bytes + small - 1) / small * small;
    return (bytes + large - 1) / large * large;
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> used_;
  size_t in_use_ = 0, peak_ = 0, reserved_ = 0;
};

std::mutex g_pools_mutex;
std::map<int, CachingPool*> g_pools;  // never freed: device memory outlives any static destructor order

CachingPool& pool(int device) {
  std::lock_guard<std::mutex> lock(g_pools_mutex);
  auto it = g_pools.find(device);
  if (it == g_pools.end()) it = g_pools.emplace(device, new CachingPool()).first;
  return *it->second;
}

cudaMemcpyKind to_cuda(tp_copy_kind k) {
  switch (k) {
    case TP_COPY_HOST_TO_DEVICE: return cudaMemcpyHostToDevice;
    case TP_COPY_DEVICE_TO_HOST: return cudaMemcpyDeviceToHost;
    case TP_COPY_DEVICE_TO_DEVICE: return cudaMemcpyDeviceToDevice;
    case TP_COPY_HOST_TO_HOST: return cudaMemcpyHostToHost;
  }
  return cudaMemcpyDefault;
}

}  // namespace

extern "C" {

int tp_cuda_device_count(void) {
  static int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

int tp_cuda_device_from_pci_bus_id(const char* pci_bus_id) {
  if (pci_bus_id == nullptr || tp_cuda_device_count() == 0) return -1;
  int dev = -1;
  if (cudaDeviceGetByPCIBusId(&dev, pci_bus_id) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return dev;
}

int tp_cuda_device_info(int device, char* name, size_t name_len, int* cc_major, int* cc_minor,
                        size_t* total_bytes) {
  if (device < 0 || device >= tp_cuda_device_count()) {
    tp_set_last_error("no such CUDA device");
    return 1;
  }
  cudaDeviceProp prop;
  cudaError_t e = cudaGetDeviceProperties(&prop, device);
  if (e != cudaSuccess) return fail("cudaGetDeviceProperties", e) ? 0 : 1;
  if (name && name_len) std::snprintf(name, name_len, "%s", prop.name);
  if (cc_major) *cc_major = prop.major;
  if (cc_minor) *cc_minor = prop.minor;
  if (total_bytes) *total_bytes = prop.totalGlobalMem;
  return 0;
}

void* tp_cuda_malloc(int device, size_t bytes) { return pool(device).alloc(device, bytes); }

void tp_cuda_free(int device, void* ptr) { pool(device).free(ptr); }

int tp_cuda_memory_stats(int device, size_t* in_use, size_t* peak_in_use, size_t* reserved) {
  pool(device).stats(in_use, peak_in_use, reserved);
  return 0;
}

int tp_cuda_memory_reset_peak(int device) {
  pool(device).reset_peak();
  return 0;
}

int tp_cuda_memcpy(void* dst, const void* src, size_t bytes, tp_copy_kind kind, void* stream) {
  if (bytes == 0) return 0;
  cudaError_t e = stream ? cudaMemcpyAsync(dst, src, bytes, to_cuda(kind), static_cast<cudaStream_t>(stream))
                         : cudaMemcpy(dst, src, bytes, to_cuda(kind));
  return e == cudaSuccess ? 0 : (fail("cudaMemcpy", e), 1);
}

int tp_cuda_memset(void* dst, int value, size_t bytes, void* stream) {
  if (bytes == 0) return 0;
  cudaError_t e = stream ? cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(stream))
                         : cudaMemset(dst, value, bytes);
  return e == cudaSuccess ? 0 : (fail("cudaMemset", e), 1);
}

void* tp_cuda_stream_create(int device) {
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    fail("cudaStreamCreate", e);
    return nullptr;
  }
  return s;
}

void tp_cuda_stream_destroy(void* stream) {
  if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}

int tp_cuda_stream_synchronize(void* stream) {
  cudaError_t e = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
  return e == cudaSuccess ? 0 : (fail("cudaStreamSynchronize", e), 1);
}

void* tp_cuda_event_create(int device) {
  DeviceGuard guard(device);
  cudaEvent_t ev = nullptr;
  cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    fail("cudaEventCreate", e);
    return nullptr;
  }
  return ev;
}

void tp_cuda_event_destroy(void* event) {
  if (event) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

int tp_cuda_event_record(void* event, void* stream) {
  cudaError_t e = cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream));
  return e == cudaSuccess ? 0 : (fail("cudaEventRecord", e), 1);
}

int tp_cuda_stream_wait_event(void* stream, void* event) {
  cudaError_t e = cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0);
  return e == cudaSuccess ? 0 : (fail("cudaStreamWaitEvent", e), 1);
}

int tp_cuda_event_synchronize(void* event) {
  cudaError_t e = cudaEventSynchronize(static_cast<cudaEvent_t>(event));
  return e == cudaSuccess ? 0 : (fail("cudaEventSynchronize", e), 1);
}

}  // extern "C"
