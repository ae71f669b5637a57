// ep_trtpy's own minimal declarations of the ONNX Runtime plugin-EP ABI.
//
// Written from the project's fact sheet (shared/research/ort_plugin_ep_abi.md): names, slot numbers, member orders
// and enum values only. No ORT header is included or reproduced. Everything here targets API version 24 (the first
// with a kernel registry) and was checked against onnxruntime 1.30.0 and 1.31.1; the self-check probes in
// shim/abi_probes.cpp verify the slots we rely on at load time.
//
// Three parts:
//   1. opaque handle types and the enums we pass or receive;
//   2. the structs the plugin implements (ORT calls into them), laid out member by member, each followed by a
//      zeroed reserve so that a layout or version mistake reads NULL instead of garbage;
//   3. typed accessors for the OrtApi / OrtEpApi function tables: one `Slot<Table, index, signature>` per function
//      we call, and `slot_fn<S>(table)` that reads `((void* const*)table)[index]` as that signature.
#pragma once

#include <cstddef>
#include <cstdint>

// ---------------------------------------------------------------------------------------------- 1. handles ---
// Opaque: the plugin only ever holds pointers to these.
struct OrtApi;
struct OrtEpApi;
struct OrtModelEditorApi;
struct OrtStatus;
struct OrtLogger;
struct OrtHardwareDevice;
struct OrtEpDevice;
struct OrtKeyValuePairs;
struct OrtSessionOptions;
struct OrtRunOptions;
struct OrtGraph;
struct OrtNode;
struct OrtValueInfo;
struct OrtOpAttr;
struct OrtTypeInfo;
struct OrtTensorTypeAndShapeInfo;
struct OrtValue;
struct OrtMemoryInfo;
struct OrtMemoryDevice;
struct OrtEpGraphSupportInfo;
struct OrtNodeComputeContext;
struct OrtKernelContext;
struct OrtKernelInfo;
struct OrtKernelRegistry;
struct OrtKernelDefBuilder;
struct OrtKernelDef;
struct OrtDataType;
struct OrtSyncStream;

namespace tp::ort {

// Status codes (OrtErrorCode).
enum ErrorCode : int {
  kOk = 0,
  kFail = 1,
  kInvalidArgument = 2,
  kNoSuchFile = 3,
  kNoModel = 4,
  kEngineError = 5,
  kRuntimeException = 6,
  kInvalidProtobuf = 7,
  kModelLoaded = 8,
  kNotImplemented = 9,
  kInvalidGraph = 10,
  kEpFail = 11,
};

enum LoggingLevel : int { kVerbose = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

// OrtMemoryInfoDeviceType
enum MemoryInfoDeviceType : int { kMemDeviceCpu = 0, kMemDeviceGpu = 1, kMemDeviceFpga = 2, kMemDeviceNpu = 3 };
// OrtDeviceMemoryType
enum DeviceMemoryType : int { kDeviceMemDefault = 0, kDeviceMemHostAccessible = 5 };
// OrtAllocatorType
enum AllocatorType : int { kInvalidAllocator = -1, kDeviceAllocator = 0, kArenaAllocator = 1, kReadOnlyAllocator = 2 };
// OrtMemType (kernel-definition memory placement of one input/output)
enum MemType : int { kMemTypeCpuInput = -2, kMemTypeCpuOutput = -1, kMemTypeDefault = 0 };
// OrtHardwareDeviceType
enum HardwareDeviceType : int { kHwCpu = 0, kHwGpu = 1, kHwNpu = 2 };
// OrtOpAttrType
enum OpAttrType : int {
  kAttrUndefined = 0,
  kAttrInt = 1,
  kAttrInts = 2,
  kAttrFloat = 3,
  kAttrFloats = 4,
  kAttrString = 5,
  kAttrStrings = 6,
  kAttrGraph = 7,
  kAttrTensor = 8,
};
// ONNXType (only TENSOR matters to us)
enum OnnxType : int { kOnnxTypeUnknown = 0, kOnnxTypeTensor = 1 };
// OrtEpDataLayout
enum EpDataLayout : int { kLayoutNchw = 0, kLayoutNhwc = 1 };
// OrtCompiledModelCompatibility
enum CompiledModelCompatibility : int {
  kCompatNotApplicable = 0,
  kCompatOptimal = 1,
  kCompatPreferRecompilation = 2,
  kCompatUnsupported = 3,
};

// ONNX TensorProto element types (ONNXTensorElementDataType); the same numbers as runtime_api.h's dtype.
enum ElementType : int {
  kElemUndefined = 0,
  kElemFloat = 1,
  kElemUint8 = 2,
  kElemInt8 = 3,
  kElemUint16 = 4,
  kElemInt16 = 5,
  kElemInt32 = 6,
  kElemInt64 = 7,
  kElemString = 8,
  kElemBool = 9,
  kElemFloat16 = 10,
  kElemDouble = 11,
  kElemUint32 = 12,
  kElemUint64 = 13,
  kElemBfloat16 = 16,
};

// The API version our structs are declared up to (ORT reads no member added after it).
constexpr uint32_t kTargetApiVersion = 24;
// Reserve (in pointers) appended to every struct ORT reads from us.
constexpr size_t kStructReserve = 64;

}  // namespace tp::ort

// ----------------------------------------------------------------------------- 2. structs the plugin fills ---
// Member 0 is the version; on x86-64 function-pointer member k sits at byte offset 8*k. NULL = not implemented.

struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version);  // NULL for a version newer than the runtime
  const char* (*GetVersionString)();
};

struct OrtAllocator {
  uint32_t version;                                                         // 0  (we declare 23)
  void* (*Alloc)(OrtAllocator* self, size_t bytes);                         // 1
  void (*Free)(OrtAllocator* self, void* p);                                // 2
  const OrtMemoryInfo* (*Info)(const OrtAllocator* self);                   // 3
  void* (*Reserve)(OrtAllocator* self, size_t bytes);                       // 4  (v18, optional)
  OrtStatus* (*GetStats)(const OrtAllocator* self, OrtKeyValuePairs** out);  // 5  (v23, optional)
  void* (*AllocOnStream)(OrtAllocator* self, size_t bytes, OrtSyncStream* stream);  // 6 (v23, optional)
  void* reserved[tp::ort::kStructReserve];
};

struct OrtSyncNotificationImpl {
  uint32_t ort_version_supported;                                               // 0
  void (*Release)(OrtSyncNotificationImpl* self);                                // 1
  OrtStatus* (*Activate)(OrtSyncNotificationImpl* self);                         // 2
  OrtStatus* (*WaitOnDevice)(OrtSyncNotificationImpl* self, OrtSyncStream* consumer);  // 3
  OrtStatus* (*WaitOnHost)(OrtSyncNotificationImpl* self);                       // 4
  void* reserved[tp::ort::kStructReserve];
};

struct OrtSyncStreamImpl {
  uint32_t ort_version_supported;                                                        // 0
  void (*Release)(OrtSyncStreamImpl* self);                                               // 1
  void* (*GetHandle)(OrtSyncStreamImpl* self);                                            // 2
  OrtStatus* (*CreateNotification)(OrtSyncStreamImpl* self, OrtSyncNotificationImpl** out);  // 3
  OrtStatus* (*Flush)(OrtSyncStreamImpl* self);                                           // 4
  OrtStatus* (*OnSessionRunEnd)(OrtSyncStreamImpl* self);                                 // 5
  void* reserved[tp::ort::kStructReserve];
};

struct OrtDataTransferImpl {
  uint32_t ort_version_supported;                                                        // 0
  void (*Release)(OrtDataTransferImpl* self);                                             // 1
  bool (*CanCopy)(const OrtDataTransferImpl* self, const OrtMemoryDevice* src, const OrtMemoryDevice* dst);  // 2
  OrtStatus* (*CopyTensors)(OrtDataTransferImpl* self, const OrtValue** src, OrtValue** dst,
                            OrtSyncStream** streams, size_t count);                       // 3
  void* reserved[tp::ort::kStructReserve];
};

struct OrtNodeComputeInfo {
  uint32_t ort_version_supported;                                                                   // 0
  OrtStatus* (*CreateState)(OrtNodeComputeInfo* self, OrtNodeComputeContext* ctx, void** state);     // 1
  OrtStatus* (*Compute)(OrtNodeComputeInfo* self, void* state, OrtKernelContext* ctx);               // 2
  void (*ReleaseState)(OrtNodeComputeInfo* self, void* state);                                      // 3
  void* reserved[tp::ort::kStructReserve];
};

// Passed *to* ORT (AddNodesToFuse): exactly 8 bytes, no reserve.
struct OrtNodeFusionOptions {
  uint32_t ort_version_supported;
  bool drop_constant_initializers;
};

struct OrtKernelImpl {
  uint32_t ort_version_supported;                                             // 0 (low half)
  uint32_t flags;                                                             // 0 (high half; keep 0)
  OrtStatus* (*Compute)(OrtKernelImpl* self, OrtKernelContext* ctx);          // 1
  void (*Release)(OrtKernelImpl* self);                                        // 2
  void* PrePackWeight;                                                        // 3 (after 24; NULL)
  void* SetSharedPrePackedWeight;                                             // 4 (after 24; NULL)
  void* reserved[tp::ort::kStructReserve];
};

using OrtKernelCreateFunc = OrtStatus* (*)(void* state, const OrtKernelInfo* info, OrtKernelImpl** out);

struct OrtEp {
  uint32_t ort_version_supported;                                                                   // 0
  const char* (*GetName)(const OrtEp* self);                                                         // 1
  OrtStatus* (*GetCapability)(OrtEp* self, const OrtGraph* graph, OrtEpGraphSupportInfo* info);       // 2
  OrtStatus* (*Compile)(OrtEp* self, const OrtGraph** graphs, const OrtNode** fused_nodes, size_t count,
                        OrtNodeComputeInfo** node_compute_infos, OrtNode** ep_context_nodes);        // 3
  void (*ReleaseNodeComputeInfos)(OrtEp* self, OrtNodeComputeInfo** infos, size_t count);           // 4
  OrtStatus* (*GetPreferredDataLayout)(OrtEp* self, tp::ort::EpDataLayout* out);                     // 5
  OrtStatus* (*ShouldConvertDataLayoutForOp)(OrtEp* self, const char* domain, const char* op_type,
                                             tp::ort::EpDataLayout target, int* should_convert);     // 6
  OrtStatus* (*SetDynamicOptions)(OrtEp* self, const char* const* keys, const char* const* values,
                                  size_t count);                                                    // 7
  OrtStatus* (*OnRunStart)(OrtEp* self, const OrtRunOptions* run_options);                          // 8
  OrtStatus* (*OnRunEnd)(OrtEp* self, const OrtRunOptions* run_options, bool sync_stream);          // 9
  OrtStatus* (*CreateAllocator)(OrtEp* self, const OrtMemoryInfo* info, OrtAllocator** out);         // 10
  OrtStatus* (*CreateSyncStreamForDevice)(OrtEp* self, const OrtMemoryDevice* device,
                                          OrtSyncStreamImpl** out);                                 // 11
  const char* (*GetCompiledModelCompatibilityInfo)(OrtEp* self, const OrtGraph* graph);              // 12
  OrtStatus* (*GetKernelRegistry)(OrtEp* self, const OrtKernelRegistry** out);                       // 13 (v24)
  OrtStatus* (*IsConcurrentRunSupported)(OrtEp* self, bool* out);                                    // 14 (v24)
  void* reserved[tp::ort::kStructReserve];
};

struct OrtEpFactory {
  uint32_t ort_version_supported;                                                                   // 0
  const char* (*GetName)(const OrtEpFactory* self);                                                  // 1
  const char* (*GetVendor)(const OrtEpFactory* self);                                                // 2
  OrtStatus* (*GetSupportedDevices)(OrtEpFactory* self, const OrtHardwareDevice* const* devices, size_t count,
                                    OrtEpDevice** out, size_t max_out, size_t* count_out);           // 3
  OrtStatus* (*CreateEp)(OrtEpFactory* self, const OrtHardwareDevice* const* devices,
                         const OrtKeyValuePairs* const* ep_metadata, size_t count,
                         const OrtSessionOptions* session_options, const OrtLogger* logger, OrtEp** out);  // 4
  void (*ReleaseEp)(OrtEpFactory* self, OrtEp* ep);                                                  // 5
  uint32_t (*GetVendorId)(const OrtEpFactory* self);                                                 // 6
  const char* (*GetVersion)(const OrtEpFactory* self);                                               // 7
  OrtStatus* (*ValidateCompiledModelCompatibilityInfo)(OrtEpFactory* self, const OrtHardwareDevice* const* devices,
                                                       size_t count, const char* info,
                                                       tp::ort::CompiledModelCompatibility* out);    // 8
  OrtStatus* (*CreateAllocator)(OrtEpFactory* self, const OrtMemoryInfo* info, const OrtKeyValuePairs* options,
                                OrtAllocator** out);                                                // 9
  void (*ReleaseAllocator)(OrtEpFactory* self, OrtAllocator* allocator);                             // 10
  OrtStatus* (*CreateDataTransfer)(OrtEpFactory* self, OrtDataTransferImpl** out);                   // 11
  bool (*IsStreamAware)(const OrtEpFactory* self);                                                   // 12
  OrtStatus* (*CreateSyncStreamForDevice)(OrtEpFactory* self, const OrtMemoryDevice* device,
                                          const OrtKeyValuePairs* options, OrtSyncStreamImpl** out);  // 13
  void* reserved[tp::ort::kStructReserve];
};

// Layout checks against the fact sheet (member k at byte 8*k).
#define TP_ORT_MEMBER_AT(S, m, k) static_assert(offsetof(S, m) == 8 * (k), #S "::" #m " must be member " #k)
TP_ORT_MEMBER_AT(OrtApiBase, GetVersionString, 1);
TP_ORT_MEMBER_AT(OrtAllocator, Info, 3);
TP_ORT_MEMBER_AT(OrtAllocator, AllocOnStream, 6);
TP_ORT_MEMBER_AT(OrtSyncNotificationImpl, WaitOnHost, 4);
TP_ORT_MEMBER_AT(OrtSyncStreamImpl, OnSessionRunEnd, 5);
TP_ORT_MEMBER_AT(OrtDataTransferImpl, CopyTensors, 3);
TP_ORT_MEMBER_AT(OrtNodeComputeInfo, ReleaseState, 3);
TP_ORT_MEMBER_AT(OrtKernelImpl, Compute, 1);
TP_ORT_MEMBER_AT(OrtKernelImpl, SetSharedPrePackedWeight, 4);
TP_ORT_MEMBER_AT(OrtEp, GetCompiledModelCompatibilityInfo, 12);
TP_ORT_MEMBER_AT(OrtEp, GetKernelRegistry, 13);
TP_ORT_MEMBER_AT(OrtEp, IsConcurrentRunSupported, 14);
TP_ORT_MEMBER_AT(OrtEpFactory, GetVersion, 7);
TP_ORT_MEMBER_AT(OrtEpFactory, CreateSyncStreamForDevice, 13);
#undef TP_ORT_MEMBER_AT
static_assert(offsetof(OrtKernelImpl, flags) == 4, "OrtKernelImpl::flags shares the first 8 bytes");
static_assert(sizeof(OrtNodeFusionOptions) == 8, "OrtNodeFusionOptions is 8 bytes");

// ------------------------------------------------------------------------------------ 3. function tables ---
namespace tp::ort {

// One function of a table: which table, its 0-based slot, its C signature.
template <typename Table, size_t Index, typename Fn>
struct Slot {
  using table = Table;
  using fn = Fn;
  static constexpr size_t index = Index;
};

// The function pointer in `table` at slot S::index, typed as S::fn.
template <typename S>
inline typename S::fn slot_fn(const typename S::table* table) noexcept {
  return reinterpret_cast<typename S::fn>(reinterpret_cast<void* const*>(table)[S::index]);
}

// OrtApi: the slots of §4.1 that the plugin calls (released layout, valid for API 23 through 31).
namespace api {
using St = OrtStatus*;
// status
using CreateStatus = Slot<OrtApi, 0, St (*)(ErrorCode code, const char* msg)>;
using GetErrorCode = Slot<OrtApi, 1, ErrorCode (*)(const OrtStatus*)>;
using GetErrorMessage = Slot<OrtApi, 2, const char* (*)(const OrtStatus*)>;
using ReleaseStatus = Slot<OrtApi, 93, void (*)(OrtStatus*)>;
// values, type and shape
using GetTensorMutableData = Slot<OrtApi, 51, St (*)(OrtValue*, void**)>;
using CastTypeInfoToTensorInfo = Slot<OrtApi, 55, St (*)(const OrtTypeInfo*, const OrtTensorTypeAndShapeInfo**)>;
using GetOnnxTypeFromTypeInfo = Slot<OrtApi, 56, St (*)(const OrtTypeInfo*, OnnxType*)>;
using GetTensorElementType = Slot<OrtApi, 60, St (*)(const OrtTensorTypeAndShapeInfo*, ElementType*)>;
using GetDimensionsCount = Slot<OrtApi, 61, St (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>;
using GetDimensions = Slot<OrtApi, 62, St (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>;
using GetSymbolicDimensions = Slot<OrtApi, 63, St (*)(const OrtTensorTypeAndShapeInfo*, const char**, size_t)>;
using GetTensorTypeAndShape = Slot<OrtApi, 65, St (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>;
using CreateTensorWithDataAsOrtValue =
    Slot<OrtApi, 49, St (*)(const OrtMemoryInfo*, void* data, size_t data_bytes, const int64_t* shape, size_t rank,
                            ElementType, OrtValue**)>;  // used by the self-check only
using ReleaseValue = Slot<OrtApi, 96, void (*)(OrtValue*)>;
using ReleaseTensorTypeAndShapeInfo = Slot<OrtApi, 99, void (*)(OrtTensorTypeAndShapeInfo*)>;
using GetTensorSizeInBytes = Slot<OrtApi, 318, St (*)(const OrtValue*, size_t*)>;
using GetTensorData = Slot<OrtApi, 378, St (*)(const OrtValue*, const void**)>;
using TensorTypeAndShape_HasShape = Slot<OrtApi, 390, bool (*)(const OrtTensorTypeAndShapeInfo*)>;
// kernel context
using KernelContext_GetInputCount = Slot<OrtApi, 88, St (*)(const OrtKernelContext*, size_t*)>;
using KernelContext_GetOutputCount = Slot<OrtApi, 89, St (*)(const OrtKernelContext*, size_t*)>;
using KernelContext_GetInput = Slot<OrtApi, 90, St (*)(const OrtKernelContext*, size_t, const OrtValue**)>;
using KernelContext_GetOutput =
    Slot<OrtApi, 91, St (*)(OrtKernelContext*, size_t, const int64_t* dims, size_t ndims, OrtValue**)>;
using KernelContext_GetGPUComputeStream = Slot<OrtApi, 193, St (*)(const OrtKernelContext*, void**)>;
// memory info
using MemoryInfoGetName = Slot<OrtApi, 71, St (*)(const OrtMemoryInfo*, const char**)>;
using MemoryInfoGetId = Slot<OrtApi, 72, St (*)(const OrtMemoryInfo*, int*)>;
using ReleaseMemoryInfo = Slot<OrtApi, 94, void (*)(OrtMemoryInfo*)>;
using MemoryInfoGetDeviceType = Slot<OrtApi, 225, void (*)(const OrtMemoryInfo*, MemoryInfoDeviceType*)>;
using CreateMemoryInfo_V2 = Slot<OrtApi, 320, St (*)(const char* name, MemoryInfoDeviceType, uint32_t vendor_id,
                                                     int32_t device_id, DeviceMemoryType, size_t alignment,
                                                     AllocatorType, OrtMemoryInfo**)>;
using MemoryInfoGetDeviceMemType = Slot<OrtApi, 321, DeviceMemoryType (*)(const OrtMemoryInfo*)>;
using MemoryInfoGetVendorId = Slot<OrtApi, 322, uint32_t (*)(const OrtMemoryInfo*)>;
using SyncStream_GetHandle = Slot<OrtApi, 384, void* (*)(OrtSyncStream*)>;
// op attributes
using CreateOpAttr = Slot<OrtApi, 211, St (*)(const char* name, const void* data, int len, OpAttrType, OrtOpAttr**)>;
using ReleaseOpAttr = Slot<OrtApi, 212, void (*)(OrtOpAttr*)>;
using ReadOpAttr = Slot<OrtApi, 272, St (*)(const OrtOpAttr*, OpAttrType, void* buf, size_t len, size_t* out_len)>;
using OpAttr_GetTensorAttributeAsOrtValue = Slot<OrtApi, 362, St (*)(const OrtOpAttr*, OrtValue**)>;
using OpAttr_GetType = Slot<OrtApi, 363, St (*)(const OrtOpAttr*, OpAttrType*)>;
using OpAttr_GetName = Slot<OrtApi, 364, St (*)(const OrtOpAttr*, const char**)>;
// logging, build info, sub-APIs
using Logger_LogMessage = Slot<OrtApi, 247, St (*)(const OrtLogger*, LoggingLevel, const char* msg, const char* file,
                                                   int line, const char* func)>;
using GetBuildInfoString = Slot<OrtApi, 254, const char* (*)()>;
using GetEpApi = Slot<OrtApi, 317, const OrtEpApi* (*)()>;
using GetModelEditorApi = Slot<OrtApi, 291, const OrtModelEditorApi* (*)()>;
// key-value pairs, session options
using CreateKeyValuePairs = Slot<OrtApi, 295, void (*)(OrtKeyValuePairs**)>;
using AddKeyValuePair = Slot<OrtApi, 296, void (*)(OrtKeyValuePairs*, const char*, const char*)>;
using GetKeyValue = Slot<OrtApi, 297, const char* (*)(const OrtKeyValuePairs*, const char*)>;
using GetKeyValuePairs = Slot<OrtApi, 298, void (*)(const OrtKeyValuePairs*, const char* const** keys,
                                                    const char* const** values, size_t* count)>;
using ReleaseKeyValuePairs = Slot<OrtApi, 300, void (*)(OrtKeyValuePairs*)>;
using GetSessionOptionsConfigEntries = Slot<OrtApi, 379, St (*)(const OrtSessionOptions*, OrtKeyValuePairs**)>;
// hardware devices
using HardwareDevice_Type = Slot<OrtApi, 307, HardwareDeviceType (*)(const OrtHardwareDevice*)>;
using HardwareDevice_VendorId = Slot<OrtApi, 308, uint32_t (*)(const OrtHardwareDevice*)>;
using HardwareDevice_DeviceId = Slot<OrtApi, 310, uint32_t (*)(const OrtHardwareDevice*)>;
using HardwareDevice_Metadata = Slot<OrtApi, 311, const OrtKeyValuePairs* (*)(const OrtHardwareDevice*)>;
// value infos
using GetValueInfoName = Slot<OrtApi, 289, St (*)(const OrtValueInfo*, const char**)>;
using GetValueInfoTypeInfo = Slot<OrtApi, 290, St (*)(const OrtValueInfo*, const OrtTypeInfo**)>;
using ValueInfo_GetInitializerValue = Slot<OrtApi, 326, St (*)(const OrtValueInfo*, const OrtValue**)>;
using ValueInfo_IsRequiredGraphInput = Slot<OrtApi, 328, St (*)(const OrtValueInfo*, bool*)>;
using ValueInfo_IsOptionalGraphInput = Slot<OrtApi, 329, St (*)(const OrtValueInfo*, bool*)>;
using ValueInfo_IsGraphOutput = Slot<OrtApi, 330, St (*)(const OrtValueInfo*, bool*)>;
using ValueInfo_IsConstantInitializer = Slot<OrtApi, 331, St (*)(const OrtValueInfo*, bool*)>;
using ValueInfo_IsFromOuterScope = Slot<OrtApi, 332, St (*)(const OrtValueInfo*, bool*)>;
// graphs
using Graph_GetName = Slot<OrtApi, 333, St (*)(const OrtGraph*, const char**)>;
using Graph_GetModelPath = Slot<OrtApi, 334, St (*)(const OrtGraph*, const char**)>;
using Graph_GetNumOperatorSets = Slot<OrtApi, 336, St (*)(const OrtGraph*, size_t*)>;
using Graph_GetOperatorSets = Slot<OrtApi, 337, St (*)(const OrtGraph*, const char** domains, int64_t* versions,
                                                       size_t count)>;
using Graph_GetNumInputs = Slot<OrtApi, 338, St (*)(const OrtGraph*, size_t*)>;
using Graph_GetInputs = Slot<OrtApi, 339, St (*)(const OrtGraph*, const OrtValueInfo**, size_t)>;
using Graph_GetNumOutputs = Slot<OrtApi, 340, St (*)(const OrtGraph*, size_t*)>;
using Graph_GetOutputs = Slot<OrtApi, 341, St (*)(const OrtGraph*, const OrtValueInfo**, size_t)>;
using Graph_GetNumInitializers = Slot<OrtApi, 342, St (*)(const OrtGraph*, size_t*)>;
using Graph_GetInitializers = Slot<OrtApi, 343, St (*)(const OrtGraph*, const OrtValueInfo**, size_t)>;
using Graph_GetNumNodes = Slot<OrtApi, 344, St (*)(const OrtGraph*, size_t*)>;
using Graph_GetNodes = Slot<OrtApi, 345, St (*)(const OrtGraph*, const OrtNode**, size_t)>;
using Graph_GetParentNode = Slot<OrtApi, 346, St (*)(const OrtGraph*, const OrtNode**)>;  // NULL: top level
// nodes
using Node_GetName = Slot<OrtApi, 349, St (*)(const OrtNode*, const char**)>;
using Node_GetOperatorType = Slot<OrtApi, 350, St (*)(const OrtNode*, const char**)>;
using Node_GetDomain = Slot<OrtApi, 351, St (*)(const OrtNode*, const char**)>;
using Node_GetSinceVersion = Slot<OrtApi, 352, St (*)(const OrtNode*, int*)>;
using Node_GetNumInputs = Slot<OrtApi, 353, St (*)(const OrtNode*, size_t*)>;
using Node_GetInputs = Slot<OrtApi, 354, St (*)(const OrtNode*, const OrtValueInfo**, size_t)>;
using Node_GetNumOutputs = Slot<OrtApi, 355, St (*)(const OrtNode*, size_t*)>;
using Node_GetOutputs = Slot<OrtApi, 356, St (*)(const OrtNode*, const OrtValueInfo**, size_t)>;
using Node_GetNumAttributes = Slot<OrtApi, 359, St (*)(const OrtNode*, size_t*)>;
using Node_GetAttributes = Slot<OrtApi, 360, St (*)(const OrtNode*, const OrtOpAttr**, size_t)>;
}  // namespace api

// OrtModelEditorApi: node creation, for the EPContext nodes Compile hands to ORT (fact sheet §4.1, §5). CreateNode
// copies the attributes; ORT owns the node it returns once it is stored in Compile's ep_context_nodes.
namespace model_editor_api {
using St = OrtStatus*;
using CreateNode = Slot<OrtModelEditorApi, 6, St (*)(const char* op_type, const char* domain, const char* node_name,
                                                     const char* const* inputs, size_t num_inputs,
                                                     const char* const* outputs, size_t num_outputs,
                                                     OrtOpAttr** attributes, size_t num_attributes, OrtNode** out)>;
}  // namespace model_editor_api

// OrtEpApi: the slots of §4.2 that the plugin calls.
namespace ep_api {
using St = OrtStatus*;
using CreateEpDevice = Slot<OrtEpApi, 0, St (*)(OrtEpFactory*, const OrtHardwareDevice*, const OrtKeyValuePairs* meta,
                                                const OrtKeyValuePairs* options, OrtEpDevice**)>;
using EpGraphSupportInfo_AddNodesToFuse =
    Slot<OrtEpApi, 2, St (*)(OrtEpGraphSupportInfo*, const OrtNode* const*, size_t, const OrtNodeFusionOptions*)>;
using NodeComputeContext_NodeName = Slot<OrtEpApi, 4, const char* (*)(const OrtNodeComputeContext*)>;
using EpDevice_AddAllocatorInfo = Slot<OrtEpApi, 5, St (*)(OrtEpDevice*, const OrtMemoryInfo*)>;
using MemoryInfo_GetMemoryDevice = Slot<OrtEpApi, 6, const OrtMemoryDevice* (*)(const OrtMemoryInfo*)>;
using Value_GetMemoryDevice = Slot<OrtEpApi, 7, const OrtMemoryDevice* (*)(const OrtValue*)>;
using MemoryDevice_AreEqual = Slot<OrtEpApi, 8, bool (*)(const OrtMemoryDevice*, const OrtMemoryDevice*)>;
using MemoryDevice_GetDeviceType = Slot<OrtEpApi, 9, MemoryInfoDeviceType (*)(const OrtMemoryDevice*)>;
using MemoryDevice_GetMemoryType = Slot<OrtEpApi, 10, DeviceMemoryType (*)(const OrtMemoryDevice*)>;
using MemoryDevice_GetVendorId = Slot<OrtEpApi, 11, uint32_t (*)(const OrtMemoryDevice*)>;
using MemoryDevice_GetDeviceId = Slot<OrtEpApi, 12, uint32_t (*)(const OrtMemoryDevice*)>;
using CreateKernelRegistry = Slot<OrtEpApi, 18, St (*)(OrtKernelRegistry**)>;
using ReleaseKernelRegistry = Slot<OrtEpApi, 19, void (*)(OrtKernelRegistry*)>;
using KernelRegistry_AddKernel =
    Slot<OrtEpApi, 20, St (*)(OrtKernelRegistry*, const OrtKernelDef*, OrtKernelCreateFunc, void* state)>;
using CreateKernelDefBuilder = Slot<OrtEpApi, 21, St (*)(OrtKernelDefBuilder**)>;
using ReleaseKernelDefBuilder = Slot<OrtEpApi, 22, void (*)(OrtKernelDefBuilder*)>;
using KernelDefBuilder_SetOperatorType = Slot<OrtEpApi, 23, St (*)(OrtKernelDefBuilder*, const char*)>;
using KernelDefBuilder_SetDomain = Slot<OrtEpApi, 24, St (*)(OrtKernelDefBuilder*, const char*)>;
using KernelDefBuilder_SetSinceVersion = Slot<OrtEpApi, 25, St (*)(OrtKernelDefBuilder*, int start, int end)>;
using KernelDefBuilder_SetExecutionProvider = Slot<OrtEpApi, 26, St (*)(OrtKernelDefBuilder*, const char*)>;
using KernelDefBuilder_SetInputMemType = Slot<OrtEpApi, 27, St (*)(OrtKernelDefBuilder*, size_t, MemType)>;
using KernelDefBuilder_SetOutputMemType = Slot<OrtEpApi, 28, St (*)(OrtKernelDefBuilder*, size_t, MemType)>;
using KernelDefBuilder_AddTypeConstraint =
    Slot<OrtEpApi, 29, St (*)(OrtKernelDefBuilder*, const char* arg, const OrtDataType* const* types, size_t n)>;
using KernelDefBuilder_Build = Slot<OrtEpApi, 32, St (*)(OrtKernelDefBuilder*, OrtKernelDef**)>;
using ReleaseKernelDef = Slot<OrtEpApi, 33, void (*)(OrtKernelDef*)>;
using GetTensorDataType = Slot<OrtEpApi, 40, St (*)(ElementType, const OrtDataType**)>;
}  // namespace ep_api

}  // namespace tp::ort
