// OrtEpFactory: identity, device discovery (GPU memory declaration), and wiring of allocator, data transfer,
// streams and EP creation.
#include "factory.h"

#include <string>
#include <vector>

namespace tp::shim {
namespace {

using namespace ort::api;

const char* get_name(const OrtEpFactory*) noexcept { return kEpName; }
const char* get_vendor(const OrtEpFactory*) noexcept { return kVendor; }
uint32_t get_vendor_id(const OrtEpFactory*) noexcept { return kVendorId; }
const char* get_version(const OrtEpFactory*) noexcept { return kEpVersion; }
bool is_stream_aware(const OrtEpFactory* self) noexcept { return as_factory(self)->gpu; }

struct KeyValues {
  OrtKeyValuePairs* kv = nullptr;
  KeyValues() { api<CreateKeyValuePairs>()(&kv); }
  ~KeyValues() {
    if (kv) api<ReleaseKeyValuePairs>()(kv);
  }
  void add(const char* k, const std::string& v) { api<AddKeyValuePair>()(kv, k, v.c_str()); }
};

// Creates one OrtEpDevice; ORT owns it afterwards. `memory` may be NULL (CPU-based EP: all I/O in host memory).
OrtEpDevice* make_ep_device(Factory* f, const OrtHardwareDevice* hw, int cuda_ordinal, const OrtMemoryInfo* memory) {
  KeyValues meta;
  meta.add("backend", cuda_ordinal >= 0 ? "cuda" : "reference");
  meta.add("cuda_device_id", std::to_string(cuda_ordinal));
  OrtEpDevice* device = nullptr;
  check(api<ort::ep_api::CreateEpDevice>()(&f->base, hw, meta.kv, nullptr, &device), "CreateEpDevice");
  if (memory != nullptr)
    check(api<ort::ep_api::EpDevice_AddAllocatorInfo>()(device, memory), "EpDevice_AddAllocatorInfo");
  return device;
}

OrtStatus* get_supported_devices(OrtEpFactory* self, const OrtHardwareDevice* const* devices, size_t count,
                                 OrtEpDevice** out, size_t max_out, size_t* count_out) noexcept {
  return guard("GetSupportedDevices", [&]() -> OrtStatus* {
    Factory* f = as_factory(self);
    *count_out = 0;
    const OrtHardwareDevice* cpu = nullptr;
    std::vector<std::pair<const OrtHardwareDevice*, int>> gpus;  // ORT's GPU device and its CUDA ordinal
    for (size_t i = 0; i < count; ++i) {
      const OrtHardwareDevice* hw = devices[i];
      ort::HardwareDeviceType type = api<HardwareDevice_Type>()(hw);
      if (type == ort::kHwCpu && cpu == nullptr) cpu = hw;
      if (!f->gpu || type != ort::kHwGpu || api<HardwareDevice_VendorId>()(hw) != kVendorId) continue;
      const OrtKeyValuePairs* md = api<HardwareDevice_Metadata>()(hw);
      const char* bus = md ? api<GetKeyValue>()(md, "pci_bus_id") : nullptr;
      int ordinal = bus ? tp_cuda_device_from_pci_bus_id(bus) : -1;
      if (ordinal < 0) {
        TP_LOG(g_default_logger, ort::kInfo,
               std::string("ep_trtpy: ORT offered an NVIDIA GPU (pci_bus_id ") + (bus ? bus : "unknown") +
                   ") that CUDA does not list; skipped");
        continue;
      }
      gpus.emplace_back(hw, ordinal);
    }

    std::vector<OrtEpDevice*> made;
    if (f->gpu) {
      // CUDA works but ORT's discovery found no matching GPU (sandboxes, older discovery): pair CUDA device 0
      // with the CPU hardware device, still declaring GPU memory so I/O stays on the device.
      if (gpus.empty() && cpu != nullptr) gpus.emplace_back(cpu, 0);
      for (auto& [hw, ordinal] : gpus) {
        if (made.size() >= max_out) break;
        made.push_back(make_ep_device(f, hw, ordinal, f->memory_info(ordinal)));
      }
    } else if (cpu != nullptr && max_out > 0) {
      made.push_back(make_ep_device(f, cpu, -1, nullptr));
      std::call_once(f->reference_notice, [] {
        TP_LOG(g_default_logger, ort::kWarning,
               "ep_trtpy: no usable CUDA device; TrtPyExecutionProvider runs its engines on the numpy reference "
               "backend (correct results, CPU speed).");
      });
    }
    for (size_t i = 0; i < made.size(); ++i) out[i] = made[i];
    *count_out = made.size();
    return nullptr;
  });
}

}  // namespace

const OrtMemoryInfo* Factory::memory_info(int cuda_ordinal) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = memory_infos.find(cuda_ordinal);
  if (it != memory_infos.end()) return it->second;
  OrtMemoryInfo* info = nullptr;
  check(api<CreateMemoryInfo_V2>()(kMemoryInfoName, ort::kMemDeviceGpu, kVendorId, cuda_ordinal,
                                   ort::kDeviceMemDefault, 0, ort::kDeviceAllocator, &info),
        "CreateMemoryInfo_V2");
  memory_infos.emplace(cuda_ordinal, info);
  return info;
}

int Factory::ordinal_of(const OrtMemoryInfo* info) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [ordinal, mine] : memory_infos)
    if (mine == info) return ordinal;
  // ORT may hand back an equal copy: match by name, device type, vendor and id.
  const char* name = nullptr;
  int id = -1;
  OrtStatus* st = api<MemoryInfoGetName>()(info, &name);
  if (st != nullptr) {
    take_status_message(st);
    return -1;
  }
  if (name == nullptr || std::string(name) != kMemoryInfoName) return -1;
  if (api<MemoryInfoGetVendorId>()(info) != kVendorId) return -1;
  st = api<MemoryInfoGetId>()(info, &id);
  if (st != nullptr) {
    take_status_message(st);
    return -1;
  }
  return memory_infos.count(id) ? id : -1;
}

Factory* create_factory() {
  auto* f = new Factory();
  OrtEpFactory& b = f->base;
  b.ort_version_supported = ort::kTargetApiVersion;
  b.GetName = get_name;
  b.GetVendor = get_vendor;
  b.GetSupportedDevices = get_supported_devices;
  b.CreateEp = create_ep;
  b.ReleaseEp = release_ep;
  b.GetVendorId = get_vendor_id;
  b.GetVersion = get_version;
  b.ValidateCompiledModelCompatibilityInfo = nullptr;
  b.CreateAllocator = create_allocator;
  b.ReleaseAllocator = release_allocator;
  b.CreateDataTransfer = create_data_transfer;
  b.IsStreamAware = is_stream_aware;
  b.CreateSyncStreamForDevice = create_sync_stream;
  fill_reserve(b.reserved);
  f->gpu = tp_cuda_device_count() > 0;
  return f;
}

void destroy_factory(Factory* f) noexcept {
  if (f == nullptr) return;
  if (f->kernel_registry != nullptr) api<ort::ep_api::ReleaseKernelRegistry>()(f->kernel_registry);
  for (auto& kv : f->memory_infos) api<ReleaseMemoryInfo>()(kv.second);
  delete f;
}

}  // namespace tp::shim
