// Helpers over ORT tensors (OrtValue): element type and shape, memory placement, host-readable copies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shim_common.h"
#include "tp/runtime_api.h"

namespace tp::shim {

struct TensorShape {
  int32_t dtype = 0;  // ONNX element type
  std::vector<int64_t> dims;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

// Element type and dims of a tensor value. Throws OrtError for a non-tensor.
TensorShape tensor_shape(const OrtValue* value);

// Bytes per element of an ONNX element type; 0 for types without a fixed-size element (string, sub-byte types).
size_t element_size(int32_t dtype);

// Where a value lives. NULL memory device (a non-tensor) counts as host.
struct Placement {
  bool on_device = false;  // GPU memory of any vendor
  bool ours = false;       // GPU memory with NVIDIA's vendor id (addressable by CUDA)
  int device_id = -1;
};
Placement placement_of(const OrtMemoryDevice* device);
Placement value_placement(const OrtValue* value);

// How to copy between two placements: the tp_cuda_memcpy kind and the copy counter it bumps (TP_COUNTER_COUNT for
// host to host, which no counter tracks). Shared by the data transfer and the Memcpy kernels.
struct CopyDirection {
  tp_copy_kind kind;
  tp_counter counter;
};
CopyDirection copy_direction(const Placement& src, const Placement& dst);

// Readable data pointer and size of a tensor value.
const void* tensor_data(const OrtValue* value);
void* tensor_mutable_data(OrtValue* value);
size_t tensor_bytes(const OrtValue* value);

std::string shape_string(const std::vector<int64_t>& dims);

}  // namespace tp::shim
