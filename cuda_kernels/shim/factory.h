// The OrtEpFactory of ep_trtpy and the entry points of the other shim parts it wires in.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "shim_common.h"

namespace tp::shim {

struct Factory {
  OrtEpFactory base{};  // first member: ORT's pointer to the factory is a pointer to this

  bool gpu = false;  // a CUDA device is usable: GPU memory, streams, engines; otherwise the reference backend
  std::mutex mu;
  std::map<int, OrtMemoryInfo*> memory_infos;  // GPU DEFAULT memory per CUDA ordinal; alive until release
  OrtKernelRegistry* kernel_registry = nullptr;  // Memcpy kernels, created on first use
  std::once_flag reference_notice;

  // The registered GPU memory info of a CUDA ordinal (created on first use).
  const OrtMemoryInfo* memory_info(int cuda_ordinal);
  // The ordinal whose registered memory info this is, or -1.
  int ordinal_of(const OrtMemoryInfo* info);
};

inline Factory* as_factory(OrtEpFactory* f) { return reinterpret_cast<Factory*>(f); }
inline const Factory* as_factory(const OrtEpFactory* f) { return reinterpret_cast<const Factory*>(f); }

Factory* create_factory();
void destroy_factory(Factory* factory) noexcept;

// allocator.cpp
OrtStatus* create_allocator(OrtEpFactory* self, const OrtMemoryInfo* info, const OrtKeyValuePairs* options,
                            OrtAllocator** out) noexcept;
void release_allocator(OrtEpFactory* self, OrtAllocator* allocator) noexcept;

// data_transfer.cpp
OrtStatus* create_data_transfer(OrtEpFactory* self, OrtDataTransferImpl** out) noexcept;

// stream.cpp
OrtStatus* create_sync_stream(OrtEpFactory* self, const OrtMemoryDevice* device, const OrtKeyValuePairs* options,
                              OrtSyncStreamImpl** out) noexcept;

// ep.cpp
OrtStatus* create_ep(OrtEpFactory* self, const OrtHardwareDevice* const* devices,
                     const OrtKeyValuePairs* const* ep_metadata, size_t count, const OrtSessionOptions* options,
                     const OrtLogger* logger, OrtEp** out) noexcept;
void release_ep(OrtEpFactory* self, OrtEp* ep) noexcept;

// memcpy_kernels.cpp: the registry of MemcpyFromHost / MemcpyToHost kernels (owned by the factory), and a fresh
// one (the caller releases it with ReleaseKernelRegistry; the ABI self-check builds one).
const OrtKernelRegistry* memcpy_kernel_registry(Factory& factory);
OrtKernelRegistry* build_memcpy_kernel_registry();

// abi_probes.cpp: runs the self-check probes, stores the report in the runtime; "" when all passed, else why not.
std::string run_abi_probes(const OrtApiBase* base);

}  // namespace tp::shim
