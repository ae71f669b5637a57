/*
 * ep_trtpy native runtime: the C interface shared by the three native pieces.
 *
 *   libep_trtpy_runtime.so  (runtime/, kernels/)  implements everything declared here. No Python, no ORT symbols.
 *   libep_trtpy_ep.so       (shim/)               the ORT plugin; calls this API; exports only the two ORT entry points.
 *   _kernels.*.so           (bindings/)           the pybind11 module; installs the host callbacks, wraps engines.
 *
 * Conventions
 *   - Functions returning int return 0 on success; on failure a message is kept per thread and returned by
 *     tp_last_error(). Nothing here throws.
 *   - dtype values are ONNX TensorProto element types (FLOAT 1, UINT8 2, INT8 3, INT32 6, INT64 7, BOOL 9,
 *     FLOAT16 10, DOUBLE 11, BFLOAT16 16).
 *   - Strings and arrays handed back by a host callback through an out-parameter are allocated with malloc();
 *     the receiver frees them with free().
 */
#ifndef TP_RUNTIME_API_H_
#define TP_RUNTIME_API_H_

#include <stddef.h>
#include <stdint.h>

#if defined(TP_BUILDING_RUNTIME)
#define TP_API __attribute__((visibility("default")))
#else
#define TP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------ errors -- */

/* Message of the last failing tp_* call on this thread ("" if none). Valid until the next failing call. */
TP_API const char* tp_last_error(void);
TP_API void tp_set_last_error(const char* message);

/* ------------------------------------------------------------------------------------------------ device -- */

/* Number of usable CUDA devices; 0 when there is no driver, no device, or the driver is too old. Never fails. */
TP_API int tp_cuda_device_count(void);
/* CUDA ordinal of the device with this PCI bus id ("0000:00:06.0"), or -1. */
TP_API int tp_cuda_device_from_pci_bus_id(const char* pci_bus_id);
/* Name, compute capability and memory of a device. */
TP_API int tp_cuda_device_info(int device, char* name, size_t name_len, int* cc_major, int* cc_minor,
                               size_t* total_bytes);

typedef enum tp_copy_kind {
  TP_COPY_HOST_TO_DEVICE = 1,
  TP_COPY_DEVICE_TO_HOST = 2,
  TP_COPY_DEVICE_TO_DEVICE = 3,
  TP_COPY_HOST_TO_HOST = 4
} tp_copy_kind;

/* Device memory from a caching allocator (one pool per device). Freed blocks are reused by later allocations;
 * reuse is safe for work ordered on one stream, which is how the EP uses it. NULL on failure. */
TP_API void* tp_cuda_malloc(int device, size_t bytes);
TP_API void tp_cuda_free(int device, void* ptr);
/* Bytes currently allocated / peak allocated / held by the pool, per device. */
TP_API int tp_cuda_memory_stats(int device, size_t* in_use, size_t* peak_in_use, size_t* reserved);
/* Start a new peak measurement: the peak becomes the bytes in use now. */
TP_API int tp_cuda_memory_reset_peak(int device);

/* Copy; stream may be NULL for a synchronous copy. */
TP_API int tp_cuda_memcpy(void* dst, const void* src, size_t bytes, tp_copy_kind kind, void* stream);
TP_API int tp_cuda_memset(void* dst, int value, size_t bytes, void* stream);

TP_API void* tp_cuda_stream_create(int device); /* non-blocking stream; NULL on failure */
TP_API void tp_cuda_stream_destroy(void* stream);
TP_API int tp_cuda_stream_synchronize(void* stream);

TP_API void* tp_cuda_event_create(int device); /* timing disabled; NULL on failure */
TP_API void tp_cuda_event_destroy(void* event);
TP_API int tp_cuda_event_record(void* event, void* stream);
TP_API int tp_cuda_stream_wait_event(void* stream, void* event);
TP_API int tp_cuda_event_synchronize(void* event);

/* ------------------------------------------------------------------------------------------------ engine -- */

/* A built engine ready to run on one device. Created and owned by the Python side (ep_trtpy._kernels.Engine);
 * the shim only borrows it between get_engine() and release_program(). */
typedef struct tp_engine tp_engine;

TP_API int tp_engine_num_inputs(const tp_engine* engine);
TP_API int tp_engine_num_outputs(const tp_engine* engine);
/* dtype and shape of input or output `index` (is_output selects which). dims stays valid for the engine's life. */
TP_API int tp_engine_io_info(const tp_engine* engine, int is_output, int index, int32_t* dtype,
                             const int64_t** dims, size_t* ndims);
/* Run the launch list on `stream` (a cudaStream_t). inputs/outputs are device pointers in engine order.
 * Asynchronous: returns once the work is enqueued. */
TP_API int tp_engine_run(tp_engine* engine, const void* const* inputs, void* const* outputs, void* stream);

/* ---------------------------------------------------------------------------------------- host callbacks -- */

/* A tensor handed across the host-callback boundary. `data` is host memory (NULL when only the shape matters). */
typedef struct tp_host_tensor {
  const char* name; /* "" when unnamed */
  int32_t dtype;
  const int64_t* dims;
  size_t ndims;
  const void* data;
  size_t nbytes;
} tp_host_tensor;

/* Given to run_reference: returns host memory for output `index` with these dims, or NULL on failure, and sets
 * *dtype to the output's element type (the host needs it to view the memory). */
typedef void* (*tp_alloc_output_fn)(void* ctx, size_t index, const int64_t* dims, size_t ndims, int32_t* dtype);

/* Given to context_node: adds one attribute of the EPContext node. type 1 (INT): int_value; type 5 (STRING): the
 * nbytes bytes at `bytes` (binary allowed). Returns 0, or nonzero when the attribute cannot be created. */
typedef int (*tp_context_attr_fn)(void* ctx, const char* name, int32_t type, int64_t int_value, const void* bytes,
                                  size_t nbytes);

#define TP_HOST_CALLBACKS_VERSION 2u

/*
 * Build-time (and reference-run) services the Python package provides to the shim. The pybind11 module installs
 * them when `ep_trtpy` is imported, so the shim never links libpython. Every callback takes the GIL itself and is
 * safe to call from any thread, with or without the GIL held. Each returns 0 on success; on failure it returns
 * nonzero and sets *error to a malloc'ed message. Exceptions never cross this boundary.
 *
 * JSON documents are described in ep_trtpy/_host.py (the Python side) and written by shim/graph_export.cpp.
 */
typedef struct tp_host_callbacks {
  uint32_t version; /* TP_HOST_CALLBACKS_VERSION */

  /* Validate provider options and create the Python-side EP object.
   * options_json: {"key": "value", ...}, the provider options as ORT passed them (prefix removed), plus
   *               session entries under their own names ("ep.context_enable", ...).
   * device_json:  {"backend": "cuda" | "reference", "devices": [{"device_id": 0, "name": "...", "cc": [9, 0],
   *               "total_bytes": N}, ...]}: the devices ORT gave this EP instance.
   * Out: ep_id, and the CUDA ordinal the EP must use (-1 for the reference backend). */
  int (*create_ep)(const char* options_json, const char* device_json, int64_t* ep_id, int32_t* device_id,
                   char** error);
  void (*release_ep)(int64_t ep_id);

  /* Partition. graph_json describes the graph ORT offered; initializers[i] carries the data of the i-th name
   * in graph_json["initializers"]. Out: clusters as a flat array
   * [n_clusters, len_0, node_index..., len_1, node_index...] of indices into graph_json["nodes"]. */
  int (*get_capability)(int64_t ep_id, const char* graph_json, const tp_host_tensor* initializers, size_t n_init,
                        int64_t** clusters, size_t* clusters_len, char** error);

  /* Compile one fused subgraph into a program (builds eagerly when every input shape is static).
   * graph_json additionally has "fused_node": {"name", "inputs", "outputs"}.
   * Out: program_id, and runtime_inputs: indices into fused_node.inputs that the engine consumes at run time,
   * in engine input order (constant initializers are baked into the engine and left out). */
  int (*compile)(int64_t ep_id, const char* graph_json, const tp_host_tensor* initializers, size_t n_init,
                 int64_t* program_id, int64_t** runtime_inputs, size_t* n_runtime_inputs, char** error);

  /* Engine for these concrete runtime-input shapes (data is NULL): from memory, from the engine cache, or
   * built now. The engine stays valid until release_program(program_id). */
  int (*get_engine)(int64_t program_id, const tp_host_tensor* inputs, size_t n_inputs, tp_engine** engine,
                    char** error);

  /* Reference backend (no GPU): run the program on host tensors with numpy; outputs are written into memory
   * obtained from alloc(alloc_ctx, index, dims, ndims). */
  int (*run_reference)(int64_t program_id, const tp_host_tensor* inputs, size_t n_inputs, tp_alloc_output_fn alloc,
                       void* alloc_ctx, char** error);

  void (*release_program)(int64_t program_id);

  /* EPContext model generation (session entry ep.context_enable=1): describe the EPContext node that replaces the
   * program's fused node in the context model. Called by Compile right after compile(); the engine is obtained
   * now (built, or from the engine cache) for the program's shapes. Out: node_name (malloc'ed), and one
   * emit(emit_ctx, ...) call per attribute (ep_cache_context, embed_mode, source, ...). With embed mode 0 the host
   * writes the engine file beside the context model itself. The node's inputs are the program's runtime inputs in
   * engine order and its outputs the fused node's outputs (the shim knows both). */
  int (*context_node)(int64_t program_id, tp_context_attr_fn emit, void* emit_ctx, char** node_name, char** error);
} tp_host_callbacks;

/* Installed by the pybind11 module on import; NULL until then (a non-Python host). The table is copied. */
TP_API void tp_set_host_callbacks(const tp_host_callbacks* callbacks);
TP_API const tp_host_callbacks* tp_get_host_callbacks(void);

/* Human-readable report of the plugin's ABI self-check (shim/abi_probes.cpp), set when ORT loads the plugin;
 * "" before that. The text is copied; the returned pointer is valid until the next tp_set_abi_report. */
TP_API void tp_set_abi_report(const char* report);
TP_API const char* tp_get_abi_report(void);

/* ------------------------------------------------------------------------------------------------- stats -- */

/* Process-wide counters, readable from Python (ep_trtpy.runtime_stats()) so tests can assert which path ran. */
typedef enum tp_counter {
  TP_COUNTER_GPU_ENGINE_RUNS = 0,      /* tp_engine_run calls that enqueued work */
  TP_COUNTER_REFERENCE_RUNS = 1,       /* Compute calls served by the numpy reference backend */
  TP_COUNTER_HOST_GET_ENGINE = 2,      /* Compute calls that had to ask Python for an engine (new shape) */
  TP_COUNTER_STAGED_HOST_INPUTS = 3,   /* engine inputs that arrived in host memory and were copied by Compute */
  TP_COUNTER_COPIES_H2D = 4,           /* data-transfer / Memcpy-kernel copies host -> device */
  TP_COUNTER_COPIES_D2H = 5,
  TP_COUNTER_COPIES_D2D = 6,
  TP_COUNTER_COMPUTE_CALLS = 7,        /* OrtNodeComputeInfo::Compute calls */
  TP_COUNTER_GRAPH_CAPTURES = 8,       /* engine runs that captured a CUDA graph */
  TP_COUNTER_GRAPH_REPLAYS = 9,        /* engine runs served by replaying a captured CUDA graph */
  TP_COUNTER_TACTICS_TIMED = 10,       /* tactic candidates timed while engines were prepared */
  TP_COUNTER_PLANS_BUILT = 11,         /* cuDNN execution plans built (heuristics, maybe runtime compilation) */
  TP_COUNTER_PLANS_RESTORED = 12,      /* cuDNN execution plans restored from a layer's tactic state */
  TP_COUNTER_COUNT = 13
} tp_counter;

TP_API void tp_counter_add(tp_counter counter, uint64_t n);
TP_API uint64_t tp_counter_get(tp_counter counter);
TP_API const char* tp_counter_name(tp_counter counter);
TP_API void tp_counters_reset(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TP_RUNTIME_API_H_ */
