// MemcpyFromHost / MemcpyToHost kernels (kernel registry, API 24).
//
// ORT inserts these nodes where a value crosses between CPU nodes and ours. Registering our own (input 0 in CPU
// memory for FromHost, output 0 in CPU memory for ToHost) makes ORT plan the device side in our GPU memory, so
// every fused-node input arrives on the device (fact sheet §6.2). Compute copies asynchronously on the kernel
// context's CUDA stream.
#include <climits>
#include <vector>

#include "factory.h"
#include "ort_values.h"

namespace tp::shim {
namespace {

using namespace ort::ep_api;

enum class Direction { kFromHost, kToHost };

struct MemcpyKernel {
  OrtKernelImpl base{};  // first member
  Direction direction = Direction::kFromHost;
};

// The copy direction follows the actual placements of input and output (the kernel's declared direction is what
// made ORT plan them that way).
OrtStatus* memcpy_compute(OrtKernelImpl*, OrtKernelContext* ctx) noexcept {
  return guard("Memcpy kernel", [&]() -> OrtStatus* {
    const OrtValue* input = nullptr;
    check(api<ort::api::KernelContext_GetInput>()(ctx, 0, &input), "KernelContext_GetInput");
    if (input == nullptr) fail("Memcpy kernel: missing input");
    TensorShape shape = tensor_shape(input);
    OrtValue* output = nullptr;
    check(api<ort::api::KernelContext_GetOutput>()(ctx, 0, shape.dims.data(), shape.dims.size(), &output),
          "KernelContext_GetOutput");
    const size_t bytes = tensor_bytes(input);
    if (bytes == 0) return nullptr;
    const CopyDirection dir = copy_direction(value_placement(input), value_placement(output));
    void* stream = nullptr;
    check(api<ort::api::KernelContext_GetGPUComputeStream>()(ctx, &stream), "KernelContext_GetGPUComputeStream");
    if (tp_cuda_memcpy(tensor_mutable_data(output), tensor_data(input), bytes, dir.kind, stream) != 0)
      fail("Memcpy kernel: " + runtime_error_message());
    if (dir.counter != TP_COUNTER_COUNT) tp_counter_add(dir.counter, 1);
    return nullptr;
  });
}

void memcpy_release(OrtKernelImpl* self) noexcept { delete reinterpret_cast<MemcpyKernel*>(self); }

// Kernel-creation state: the direction. Static, so it outlives every copy of the registry ORT makes.
const Direction kFromHost = Direction::kFromHost;
const Direction kToHost = Direction::kToHost;

OrtStatus* create_memcpy_kernel(void* state, const OrtKernelInfo*, OrtKernelImpl** out) noexcept {
  return guard("creating a Memcpy kernel", [&]() -> OrtStatus* {
    auto* k = new MemcpyKernel();
    k->base.ort_version_supported = ort::kTargetApiVersion;
    k->base.flags = 0;
    k->base.Compute = memcpy_compute;
    k->base.Release = memcpy_release;
    fill_reserve(k->base.reserved);
    k->direction = *static_cast<const Direction*>(state);
    *out = &k->base;
    return nullptr;
  });
}

void add_memcpy_kernel(OrtKernelRegistry* registry, const char* op_type, const Direction* direction,
                       const std::vector<const OrtDataType*>& types) {
  OrtKernelDefBuilder* builder = nullptr;
  check(api<CreateKernelDefBuilder>()(&builder), "CreateKernelDefBuilder");
  OrtKernelDef* def = nullptr;
  try {
    check(api<KernelDefBuilder_SetOperatorType>()(builder, op_type), "KernelDefBuilder_SetOperatorType");
    check(api<KernelDefBuilder_SetDomain>()(builder, ""), "KernelDefBuilder_SetDomain");
    check(api<KernelDefBuilder_SetSinceVersion>()(builder, 1, INT_MAX), "KernelDefBuilder_SetSinceVersion");
    check(api<KernelDefBuilder_SetExecutionProvider>()(builder, kEpName), "KernelDefBuilder_SetExecutionProvider");
    if (*direction == Direction::kFromHost)
      check(api<KernelDefBuilder_SetInputMemType>()(builder, 0, ort::kMemTypeCpuInput),
            "KernelDefBuilder_SetInputMemType");
    else
      check(api<KernelDefBuilder_SetOutputMemType>()(builder, 0, ort::kMemTypeCpuOutput),
            "KernelDefBuilder_SetOutputMemType");
    check(api<KernelDefBuilder_AddTypeConstraint>()(builder, "T", types.data(), types.size()),
          "KernelDefBuilder_AddTypeConstraint");
    check(api<KernelDefBuilder_Build>()(builder, &def), "KernelDefBuilder_Build");
    // ORT copies the definition; the state pointer must outlive the registry (it is static).
    check(api<KernelRegistry_AddKernel>()(registry, def, create_memcpy_kernel,
                                          const_cast<Direction*>(direction)),
          "KernelRegistry_AddKernel");
  } catch (...) {
    if (def) api<ReleaseKernelDef>()(def);
    api<ReleaseKernelDefBuilder>()(builder);
    throw;
  }
  api<ReleaseKernelDef>()(def);
  api<ReleaseKernelDefBuilder>()(builder);
}

}  // namespace

OrtKernelRegistry* build_memcpy_kernel_registry() {
  static const ort::ElementType kTypes[] = {
      ort::kElemFloat, ort::kElemFloat16, ort::kElemBfloat16, ort::kElemDouble, ort::kElemInt8,
      ort::kElemUint8, ort::kElemInt16,   ort::kElemUint16,   ort::kElemInt32,  ort::kElemUint32,
      ort::kElemInt64, ort::kElemUint64,  ort::kElemBool,
  };
  std::vector<const OrtDataType*> types;
  for (ort::ElementType t : kTypes) {
    const OrtDataType* dt = nullptr;
    check(api<GetTensorDataType>()(t, &dt), "GetTensorDataType");
    types.push_back(dt);
  }
  OrtKernelRegistry* registry = nullptr;
  check(api<CreateKernelRegistry>()(&registry), "CreateKernelRegistry");
  try {
    add_memcpy_kernel(registry, "MemcpyFromHost", &kFromHost, types);
    add_memcpy_kernel(registry, "MemcpyToHost", &kToHost, types);
  } catch (...) {
    api<ReleaseKernelRegistry>()(registry);
    throw;
  }
  return registry;
}

const OrtKernelRegistry* memcpy_kernel_registry(Factory& f) {
  std::lock_guard<std::mutex> lock(f.mu);
  if (f.kernel_registry == nullptr) f.kernel_registry = build_memcpy_kernel_registry();
  return f.kernel_registry;
}

}  // namespace tp::shim
