// Load-time self-check of our ABI declarations (fact sheet §4.3): behaviour probes over the slots we call.
//
// ORT's binaries are stripped, so slots cannot be checked against symbols; instead each probe calls a group of
// functions and checks they behave as the declared signatures say (round trips). A wrong slot or signature shows
// up here as a failed probe, and CreateEpFactories then refuses to register instead of corrupting memory later.
// The report is stored in the runtime (tp_get_abi_report, Python: ep_trtpy._kernels.abi_report()).
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "factory.h"
#include "graph_export.h"
#include "ort_values.h"

namespace tp::shim {
namespace {

using namespace ort::api;

#define PROBE_EXPECT(cond, what) \
  do {                           \
    if (!(cond)) return what;    \
  } while (0)

std::string probe_status() {
  OrtStatus* st = api<CreateStatus>()(ort::kInvalidArgument, "tp-probe message");
  PROBE_EXPECT(st != nullptr, "CreateStatus returned NULL");
  ort::ErrorCode code = api<GetErrorCode>()(st);
  std::string msg = api<GetErrorMessage>()(st) ? api<GetErrorMessage>()(st) : "";
  api<ReleaseStatus>()(st);
  PROBE_EXPECT(code == ort::kInvalidArgument, "GetErrorCode returned " + std::to_string(code) + ", expected 2");
  PROBE_EXPECT(msg == "tp-probe message", "GetErrorMessage returned '" + msg + "'");
  return "";
}

std::string probe_key_values() {
  OrtKeyValuePairs* kv = nullptr;
  api<CreateKeyValuePairs>()(&kv);
  PROBE_EXPECT(kv != nullptr, "CreateKeyValuePairs returned NULL");
  api<AddKeyValuePair>()(kv, "tp.probe.a", "alpha");
  api<AddKeyValuePair>()(kv, "tp.probe.b", "beta");
  const char* a = api<GetKeyValue>()(kv, "tp.probe.a");
  const char* missing = api<GetKeyValue>()(kv, "tp.probe.missing");
  const char* const* keys = nullptr;
  const char* const* values = nullptr;
  size_t n = 0;
  api<GetKeyValuePairs>()(kv, &keys, &values, &n);
  bool found_b = false;
  for (size_t i = 0; i < n; ++i)
    if (keys[i] && values[i] && std::strcmp(keys[i], "tp.probe.b") == 0 && std::strcmp(values[i], "beta") == 0)
      found_b = true;
  std::string a_value = a ? a : "(null)";
  api<ReleaseKeyValuePairs>()(kv);
  PROBE_EXPECT(a_value == "alpha", "GetKeyValue returned '" + a_value + "'");
  PROBE_EXPECT(missing == nullptr, "GetKeyValue of a missing key was not NULL");
  PROBE_EXPECT(n == 2 && found_b, "GetKeyValuePairs listed " + std::to_string(n) + " pairs");
  return "";
}

std::string probe_memory_info() {
  OrtMemoryInfo* mi = nullptr;
  OrtStatus* st = api<CreateMemoryInfo_V2>()("tp-probe", ort::kMemDeviceGpu, kVendorId, 3, ort::kDeviceMemDefault, 0,
                                             ort::kDeviceAllocator, &mi);
  if (st != nullptr) return "CreateMemoryInfo_V2 failed: " + take_status_message(st);
  std::string why;
  const char* name = nullptr;
  int id = -1;
  ort::MemoryInfoDeviceType type = ort::kMemDeviceCpu;
  if ((st = api<MemoryInfoGetName>()(mi, &name)) != nullptr) why = "MemoryInfoGetName: " + take_status_message(st);
  if (why.empty() && (st = api<MemoryInfoGetId>()(mi, &id)) != nullptr)
    why = "MemoryInfoGetId: " + take_status_message(st);
  api<MemoryInfoGetDeviceType>()(mi, &type);
  const ort::DeviceMemoryType mem = api<MemoryInfoGetDeviceMemType>()(mi);
  const uint32_t vendor = api<MemoryInfoGetVendorId>()(mi);
  const OrtMemoryDevice* dev = api<ort::ep_api::MemoryInfo_GetMemoryDevice>()(mi);
  if (why.empty()) {
    if (name == nullptr || std::string(name) != "tp-probe") why = "MemoryInfoGetName gave the wrong name";
    else if (id != 3) why = "MemoryInfoGetId gave " + std::to_string(id);
    else if (type != ort::kMemDeviceGpu) why = "MemoryInfoGetDeviceType gave " + std::to_string(type);
    else if (mem != ort::kDeviceMemDefault) why = "MemoryInfoGetDeviceMemType gave " + std::to_string(mem);
    else if (vendor != kVendorId) why = "MemoryInfoGetVendorId gave " + std::to_string(vendor);
    else if (dev == nullptr) why = "MemoryInfo_GetMemoryDevice returned NULL";
    else if (api<ort::ep_api::MemoryDevice_GetDeviceType>()(dev) != ort::kMemDeviceGpu)
      why = "MemoryDevice_GetDeviceType is wrong";
    else if (api<ort::ep_api::MemoryDevice_GetMemoryType>()(dev) != ort::kDeviceMemDefault)
      why = "MemoryDevice_GetMemoryType is wrong";
    else if (api<ort::ep_api::MemoryDevice_GetVendorId>()(dev) != kVendorId)
      why = "MemoryDevice_GetVendorId is wrong";
    else if (api<ort::ep_api::MemoryDevice_GetDeviceId>()(dev) != 3)
      why = "MemoryDevice_GetDeviceId is wrong";
    else if (!api<ort::ep_api::MemoryDevice_AreEqual>()(dev, dev))
      why = "MemoryDevice_AreEqual(x, x) is false";
  }
  api<ReleaseMemoryInfo>()(mi);
  return why;
}

// Creates an attribute, reads it back through the same functions graph export uses.
std::string probe_op_attributes() {
  struct Attr {
    OrtOpAttr* attr = nullptr;
    ~Attr() {
      if (attr) api<ReleaseOpAttr>()(attr);
    }
  };
  auto make = [](Attr& a, const char* name, const void* data, int len, ort::OpAttrType type) -> std::string {
    OrtStatus* st = api<CreateOpAttr>()(name, data, len, type, &a.attr);
    if (st != nullptr) return std::string("CreateOpAttr(") + name + "): " + take_status_message(st);
    ort::OpAttrType got = ort::kAttrUndefined;
    if ((st = api<OpAttr_GetType>()(a.attr, &got)) != nullptr) return "OpAttr_GetType: " + take_status_message(st);
    if (got != type) return std::string("OpAttr_GetType of '") + name + "' gave " + std::to_string(got);
    const char* n = nullptr;
    if ((st = api<OpAttr_GetName>()(a.attr, &n)) != nullptr) return "OpAttr_GetName: " + take_status_message(st);
    if (n == nullptr || std::strcmp(n, name) != 0) return "OpAttr_GetName gave the wrong name";
    return "";
  };
  auto read = [](const Attr& a, ort::OpAttrType type, std::vector<char>* out) -> std::string {
    size_t needed = 0;
    take_status_message(api<ReadOpAttr>()(a.attr, type, nullptr, 0, &needed));
    out->assign(needed, '\x7f');
    size_t got = 0;
    OrtStatus* st = api<ReadOpAttr>()(a.attr, type, out->data(), out->size(), &got);
    if (st != nullptr) return "ReadOpAttr: " + take_status_message(st);
    if (got != needed) return "ReadOpAttr size query and read disagree";
    return "";
  };
  std::string why;
  {
    Attr a;
    const int64_t v = -1234567890123LL;
    if (!(why = make(a, "i", &v, 1, ort::kAttrInt)).empty()) return why;
    int64_t back = 0;
    size_t got = 0;
    OrtStatus* st = api<ReadOpAttr>()(a.attr, ort::kAttrInt, &back, sizeof back, &got);
    if (st != nullptr) return "ReadOpAttr(INT): " + take_status_message(st);
    PROBE_EXPECT(back == v, "INT attribute read back wrong");
  }
  {
    Attr a;
    const float v = 0.1f;
    if (!(why = make(a, "f", &v, 1, ort::kAttrFloat)).empty()) return why;
    float back = 0;
    size_t got = 0;
    OrtStatus* st = api<ReadOpAttr>()(a.attr, ort::kAttrFloat, &back, sizeof back, &got);
    if (st != nullptr) return "ReadOpAttr(FLOAT): " + take_status_message(st);
    PROBE_EXPECT(back == v, "FLOAT attribute read back wrong");
  }
  {
    Attr a;
    const int64_t v[3] = {1, -2, 3};
    if (!(why = make(a, "is", v, 3, ort::kAttrInts)).empty()) return why;
    std::vector<char> b;
    if (!(why = read(a, ort::kAttrInts, &b)).empty()) return why;
    PROBE_EXPECT(b.size() == sizeof v && std::memcmp(b.data(), v, sizeof v) == 0, "INTS attribute read back wrong");
  }
  {
    Attr a;
    const float v[2] = {1.5f, -0.25f};
    if (!(why = make(a, "fs", v, 2, ort::kAttrFloats)).empty()) return why;
    std::vector<char> b;
    if (!(why = read(a, ort::kAttrFloats, &b)).empty()) return why;
    PROBE_EXPECT(b.size() == sizeof v && std::memcmp(b.data(), v, sizeof v) == 0, "FLOATS attribute read back wrong");
  }
  {
    Attr a;
    const char* v = "tp-probe";
    if (!(why = make(a, "s", v, static_cast<int>(std::strlen(v)), ort::kAttrString)).empty()) return why;
    std::vector<char> b;
    if (!(why = read(a, ort::kAttrString, &b)).empty()) return why;
    // Releases differ on whether a terminating NUL is written; remember which one this is.
    if (b.size() == std::strlen(v) + 1 && b.back() == '\0') {
      g_string_attr_has_nul = true;
      b.pop_back();
    } else {
      g_string_attr_has_nul = false;
    }
    PROBE_EXPECT(std::string(b.begin(), b.end()) == v, "STRING attribute read back wrong");
  }
  {
    // Whether a STRING attribute may hold binary bytes: some releases copy it only up to the first NUL.
    Attr a;
    const char v[] = {'t', '\0', 'p'};
    if (!(why = make(a, "sb", v, static_cast<int>(sizeof v), ort::kAttrString)).empty()) return why;
    std::vector<char> b;
    if (!(why = read(a, ort::kAttrString, &b)).empty()) return why;
    if (g_string_attr_has_nul && !b.empty() && b.back() == '\0') b.pop_back();
    g_string_attr_binary = b.size() == sizeof v && std::memcmp(b.data(), v, sizeof v) == 0;
  }
  {
    Attr a;
    const char* v[2] = {"ab", "c"};
    if (!(why = make(a, "ss", v, 2, ort::kAttrStrings)).empty()) return why;
    std::vector<char> b;
    if (!(why = read(a, ort::kAttrStrings, &b)).empty()) return why;
    const char expect[] = {'a', 'b', '\0', 'c', '\0'};
    PROBE_EXPECT(b.size() == sizeof expect && std::memcmp(b.data(), expect, sizeof expect) == 0,
                 "STRINGS attribute read back wrong");
  }
  return "";
}

// A CPU tensor over our own buffer, read back through the value helpers Compute uses.
std::string probe_tensor_value() {
  OrtMemoryInfo* mi = nullptr;
  OrtStatus* st = api<CreateMemoryInfo_V2>()("Cpu", ort::kMemDeviceCpu, 0, 0, ort::kDeviceMemDefault, 0,
                                             ort::kDeviceAllocator, &mi);
  if (st != nullptr) return "CreateMemoryInfo_V2(CPU): " + take_status_message(st);
  float data[6] = {1, 2, 3, 4, 5, 6};
  const int64_t dims[2] = {2, 3};
  OrtValue* v = nullptr;
  st = api<CreateTensorWithDataAsOrtValue>()(mi, data, sizeof data, dims, 2, ort::kElemFloat, &v);
  if (st != nullptr) {
    api<ReleaseMemoryInfo>()(mi);
    return "CreateTensorWithDataAsOrtValue: " + take_status_message(st);
  }
  std::string why;
  try {
    TensorShape shape = tensor_shape(v);
    OrtTensorTypeAndShapeInfo* info = nullptr;
    check(api<GetTensorTypeAndShape>()(v, &info), "GetTensorTypeAndShape");
    const bool has_shape = api<TensorTypeAndShape_HasShape>()(info);
    api<ReleaseTensorTypeAndShapeInfo>()(info);
    Placement where = value_placement(v);
    if (shape.dtype != ort::kElemFloat) why = "element type read back as " + std::to_string(shape.dtype);
    else if (shape.dims != std::vector<int64_t>{2, 3}) why = "shape read back as " + shape_string(shape.dims);
    else if (!has_shape) why = "TensorTypeAndShape_HasShape is false for a ranked tensor";
    else if (tensor_bytes(v) != sizeof data) why = "GetTensorSizeInBytes gave " + std::to_string(tensor_bytes(v));
    else if (tensor_data(v) != data) why = "GetTensorData does not point at the buffer";
    else if (tensor_mutable_data(v) != data) why = "GetTensorMutableData does not point at the buffer";
    else if (where.on_device) why = "Value_GetMemoryDevice does not say CPU";
  } catch (const std::exception& e) {
    why = e.what();
  }
  api<ReleaseValue>()(v);
  api<ReleaseMemoryInfo>()(mi);
  return why;
}

// Builds (and releases) the Memcpy kernel registry: the same calls GetKernelRegistry makes on a GPU machine.
std::string probe_kernel_registry() {
  OrtKernelRegistry* registry = build_memcpy_kernel_registry();
  PROBE_EXPECT(registry != nullptr, "CreateKernelRegistry returned NULL");
  api<ort::ep_api::ReleaseKernelRegistry>()(registry);
  return "";
}

}  // namespace

std::string run_abi_probes(const OrtApiBase* base) {
  const char* version = base->GetVersionString ? base->GetVersionString() : nullptr;
  const char* build = api<GetBuildInfoString>()();
  std::string report = std::string("ep_trtpy ABI self-check against ONNX Runtime ") + (version ? version : "?") +
                       " (" + (build ? build : "no build info") + "), OrtApi version " +
                       std::to_string(ort::kTargetApiVersion) + " requested\n";
  bool ok = true;
  const auto run = [&](const char* name, const std::function<std::string()>& probe) {
    std::string why;
    try {
      why = probe();
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
      why = "unknown C++ exception";
    }
    report += std::string("  ") + name + ": " + (why.empty() ? "ok" : "FAILED (" + why + ")") + "\n";
    ok = ok && why.empty();
  };
  run("version gate (GetApi(24), GetVersionString, GetEpApi slot 317)", [&]() -> std::string {
    if (version == nullptr) return "GetVersionString returned NULL";
    if (g_ep_api == nullptr) return "GetEpApi returned NULL";
    return "";
  });
  if (ok) {  // the other probes need both tables
    run("status round-trip (slots 0, 1, 2, 93)", probe_status);
    run("key-value pairs (slots 295, 296, 297, 298, 300)", probe_key_values);
    run("memory info round-trip (slots 320, 71, 72, 225, 321, 322, 94; OrtEpApi 6, 8-12)", probe_memory_info);
    run("op attributes (slots 211, 212, 272, 363, 364)", probe_op_attributes);
    run("tensor value (slots 49, 51, 60-62, 65, 96, 99, 318, 378, 390; OrtEpApi 7)", probe_tensor_value);
    run("kernel registry (OrtEpApi 18-29, 32, 33, 40)", probe_kernel_registry);
  }
  report += std::string("  note: ReadOpAttr writes STRING values ") +
            (g_string_attr_has_nul ? "with" : "without") + " a terminating NUL\n";
  report += std::string("  note: CreateOpAttr ") + (g_string_attr_binary ? "keeps" : "drops") +
            " the bytes of a STRING value after a NUL\n";
  report += std::string("  model editor API (slot 291): ") + (g_model_editor_api ? "present" : "absent") + "\n";
  report += ok ? "all probes passed" : "PROBES FAILED: the plugin refuses to register";
  tp_set_abi_report(report.c_str());
  return ok ? std::string() : report;
}

}  // namespace tp::shim
