// OrtDataTransferImpl: copies between host memory and our GPU memory, and between our GPUs.
//
// With a stream (run-time copies of a stream-aware EP) the copy is enqueued on that stream's CUDA handle and ORT
// orders consumers through notifications; without one (initializers at session start) it is synchronous.
#include "factory.h"
#include "ort_values.h"

namespace tp::shim {
namespace {

struct DataTransfer {
  OrtDataTransferImpl base{};  // first member
};

void release(OrtDataTransferImpl* self) noexcept { delete reinterpret_cast<DataTransfer*>(self); }

bool can_copy(const OrtDataTransferImpl*, const OrtMemoryDevice* src, const OrtMemoryDevice* dst) noexcept {
  try {
    Placement s = placement_of(src), d = placement_of(dst);
    if (s.on_device && !s.ours) return false;
    if (d.on_device && !d.ours) return false;
    return s.on_device || d.on_device;  // host -> GPU, GPU -> host, GPU -> GPU
  } catch (...) {
    return false;
  }
}

OrtStatus* copy_tensors(OrtDataTransferImpl*, const OrtValue** src, OrtValue** dst, OrtSyncStream** streams,
                        size_t count) noexcept {
  return guard("CopyTensors", [&]() -> OrtStatus* {
    for (size_t i = 0; i < count; ++i) {
      const CopyDirection dir = copy_direction(value_placement(src[i]), value_placement(dst[i]));
      if (dir.kind == TP_COPY_HOST_TO_HOST) fail("CopyTensors was asked to copy host memory to host memory");
      const size_t bytes = tensor_bytes(src[i]);
      const size_t dst_bytes = tensor_bytes(dst[i]);
      if (bytes != dst_bytes)
        fail("CopyTensors: source has " + std::to_string(bytes) + " bytes but destination " +
             std::to_string(dst_bytes));
      void* stream = nullptr;
      if (streams != nullptr && streams[i] != nullptr) stream = api<ort::api::SyncStream_GetHandle>()(streams[i]);
      if (bytes != 0 &&
          tp_cuda_memcpy(tensor_mutable_data(dst[i]), tensor_data(src[i]), bytes, dir.kind, stream) != 0)
        fail("CopyTensors: " + runtime_error_message());
      tp_counter_add(dir.counter, 1);
    }
    return nullptr;
  });
}

}  // namespace

OrtStatus* create_data_transfer(OrtEpFactory* self, OrtDataTransferImpl** out) noexcept {
  return guard("CreateDataTransfer", [&]() -> OrtStatus* {
    *out = nullptr;
    if (!as_factory(self)->gpu) return nullptr;  // reference backend: all I/O is host memory, nothing to copy
    auto* t = new DataTransfer();
    t->base.ort_version_supported = ort::kTargetApiVersion;
    t->base.Release = release;
    t->base.CanCopy = can_copy;
    t->base.CopyTensors = copy_tensors;
    fill_reserve(t->base.reserved);
    *out = &t->base;
    return nullptr;
  });
}

}  // namespace tp::shim
