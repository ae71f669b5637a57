// Helpers over ORT tensors: element type and shape, memory placement, data pointers.
#include "ort_values.h"

namespace tp::shim {

TensorShape tensor_shape(const OrtValue* value) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  check(api<ort::api::GetTensorTypeAndShape>()(value, &info), "GetTensorTypeAndShape");
  TensorShape out;
  OrtStatus* st = nullptr;
  ort::ElementType et = ort::kElemUndefined;
  size_t n = 0;
  st = api<ort::api::GetTensorElementType>()(info, &et);
  if (st == nullptr) st = api<ort::api::GetDimensionsCount>()(info, &n);
  if (st == nullptr) {
    out.dims.resize(n);
    if (n) st = api<ort::api::GetDimensions>()(info, out.dims.data(), n);
  }
  api<ort::api::ReleaseTensorTypeAndShapeInfo>()(info);
  check(st, "reading a tensor's type and shape");
  out.dtype = static_cast<int32_t>(et);
  return out;
}

size_t element_size(int32_t dtype) {
  switch (dtype) {
    case ort::kElemFloat: return 4;
    case ort::kElemUint8: return 1;
    case ort::kElemInt8: return 1;
    case ort::kElemUint16: return 2;
    case ort::kElemInt16: return 2;
    case ort::kElemInt32: return 4;
    case ort::kElemInt64: return 8;
    case ort::kElemBool: return 1;
    case ort::kElemFloat16: return 2;
    case ort::kElemDouble: return 8;
    case ort::kElemUint32: return 4;
    case ort::kElemUint64: return 8;
    case ort::kElemBfloat16: return 2;
    default: return 0;
  }
}

Placement placement_of(const OrtMemoryDevice* device) {
  Placement p;
  if (device == nullptr) return p;
  ort::MemoryInfoDeviceType type = api<ort::ep_api::MemoryDevice_GetDeviceType>()(device);
  ort::DeviceMemoryType mem = api<ort::ep_api::MemoryDevice_GetMemoryType>()(device);
  // Host-accessible (pinned) memory of a GPU is host memory for our purposes: CPU code may read it.
  p.on_device = type != ort::kMemDeviceCpu && mem != ort::kDeviceMemHostAccessible;
  if (p.on_device) {
    p.ours = type == ort::kMemDeviceGpu && api<ort::ep_api::MemoryDevice_GetVendorId>()(device) == kVendorId;
    p.device_id = static_cast<int>(api<ort::ep_api::MemoryDevice_GetDeviceId>()(device));
  }
  return p;
}

Placement value_placement(const OrtValue* value) {
  return placement_of(api<ort::ep_api::Value_GetMemoryDevice>()(value));
}

CopyDirection copy_direction(const Placement& src, const Placement& dst) {
  if (src.on_device && dst.on_device) return {TP_COPY_DEVICE_TO_DEVICE, TP_COUNTER_COPIES_D2D};
  if (src.on_device) return {TP_COPY_DEVICE_TO_HOST, TP_COUNTER_COPIES_D2H};
  if (dst.on_device) return {TP_COPY_HOST_TO_DEVICE, TP_COUNTER_COPIES_H2D};
  return {TP_COPY_HOST_TO_HOST, TP_COUNTER_COUNT};
}

const void* tensor_data(const OrtValue* value) {
  const void* p = nullptr;
  check(api<ort::api::GetTensorData>()(value, &p), "GetTensorData");
  return p;
}

void* tensor_mutable_data(OrtValue* value) {
  void* p = nullptr;
  check(api<ort::api::GetTensorMutableData>()(value, &p), "GetTensorMutableData");
  return p;
}

size_t tensor_bytes(const OrtValue* value) {
  size_t n = 0;
  check(api<ort::api::GetTensorSizeInBytes>()(value, &n), "GetTensorSizeInBytes");
  return n;
}

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

}  // namespace tp::shim
