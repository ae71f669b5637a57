// OrtAllocator over the runtime's caching CUDA allocator, one per registered GPU memory info.
//
// Declared as version 23 with Reserve / GetStats / AllocOnStream left NULL (ORT then uses Alloc). Info() returns
// the very memory info registered on the OrtEpDevice, which ORT requires.
#include "factory.h"

namespace tp::shim {
namespace {

struct CudaAllocator {
  OrtAllocator base{};  // first member
  int device = 0;
  const OrtMemoryInfo* info = nullptr;
};

void* alloc(OrtAllocator* self, size_t bytes) noexcept {
  auto* a = reinterpret_cast<CudaAllocator*>(self);
  return tp_cuda_malloc(a->device, bytes);
}

void free_(OrtAllocator* self, void* p) noexcept {
  auto* a = reinterpret_cast<CudaAllocator*>(self);
  tp_cuda_free(a->device, p);
}

const OrtMemoryInfo* info(const OrtAllocator* self) noexcept {
  return reinterpret_cast<const CudaAllocator*>(self)->info;
}

}  // namespace

OrtStatus* create_allocator(OrtEpFactory* self, const OrtMemoryInfo* memory_info, const OrtKeyValuePairs*,
                            OrtAllocator** out) noexcept {
  return guard("CreateAllocator", [&]() -> OrtStatus* {
    *out = nullptr;
    Factory* f = as_factory(self);
    int ordinal = f->ordinal_of(memory_info);
    if (ordinal < 0) fail(ort::kInvalidArgument, "asked for an allocator of a memory info this EP did not register");
    auto* a = new CudaAllocator();
    a->base.version = 23;
    a->base.Alloc = alloc;
    a->base.Free = free_;
    a->base.Info = info;
    fill_reserve(a->base.reserved);
    a->device = ordinal;
    a->info = f->memory_info(ordinal);  // the registered object itself
    *out = &a->base;
    return nullptr;
  });
}

void release_allocator(OrtEpFactory*, OrtAllocator* allocator) noexcept {
  delete reinterpret_cast<CudaAllocator*>(allocator);
}

}  // namespace tp::shim
