// Shared plumbing of the ORT plugin shim: the API tables, status helpers, logging, and the exception guard that
// keeps C++ exceptions on our side of the C ABI.
//
// Inside the shim, errors travel as `OrtError` exceptions (thrown by `check()` and `fail()`); every function ORT
// calls is wrapped in `guard()` (returns an OrtStatus*) or `guard_void()`, which turn any exception into a status
// or a log line. Nothing here is exported.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "tp/ort_abi.h"
#include "tp/runtime_api.h"

namespace tp::shim {

constexpr const char* kEpName = "TrtPyExecutionProvider";
constexpr const char* kVendor = "ep_trtpy";
constexpr uint32_t kVendorId = 0x10DE;  // NVIDIA's PCI vendor id: Python's "cuda" device alias maps to it
constexpr const char* kEpVersion = "0.1.0";
constexpr const char* kMemoryInfoName = "TrtPyCuda";
// Session config entries carrying our provider options: "ep.<lowercased EP name>.<key>".
constexpr const char* kOptionPrefix = "ep.trtpyexecutionprovider.";
constexpr const char* kContextPrefix = "ep.context_";
constexpr const char* kContextEnable = "ep.context_enable";  // "1": ORT writes an EPContext model

// The tables, set once by CreateEpFactories before any other entry point can run.
extern const OrtApi* g_api;
extern const OrtEpApi* g_ep_api;
extern const OrtModelEditorApi* g_model_editor_api;

template <typename S>
struct TableOf;
template <size_t I, typename F>
struct TableOf<ort::Slot<OrtApi, I, F>> {
  static const OrtApi* get() { return g_api; }
};
template <size_t I, typename F>
struct TableOf<ort::Slot<OrtEpApi, I, F>> {
  static const OrtEpApi* get() { return g_ep_api; }
};
template <size_t I, typename F>
struct TableOf<ort::Slot<OrtModelEditorApi, I, F>> {
  static const OrtModelEditorApi* get() { return g_model_editor_api; }
};

// The typed function of slot S in its table: `api<ort::api::CreateStatus>()(code, "msg")`.
template <typename S>
inline typename S::fn api() noexcept {
  return ort::slot_fn<S>(TableOf<S>::get());
}

// An error on its way to becoming an OrtStatus.
class OrtError : public std::exception {
 public:
  OrtError(ort::ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  ort::ErrorCode code() const { return code_; }

 private:
  ort::ErrorCode code_;
  std::string message_;
};

[[noreturn]] inline void fail(ort::ErrorCode code, std::string message) { throw OrtError(code, std::move(message)); }
// Errors use FAIL, never EP_FAIL: onnxruntime's Python InferenceSession.run() catches EPFail and silently
// re-runs the model on the CPU provider from then on, which would hide our error behind a CPU run.
[[noreturn]] inline void fail(std::string message) { throw OrtError(ort::kFail, std::move(message)); }

// NULL-safe status -> message; releases the status.
std::string take_status_message(OrtStatus* status) noexcept;

// Throws OrtError (with ORT's message, prefixed by `what`) when ORT returned an error status.
void check(OrtStatus* status, const char* what);

OrtStatus* make_status(ort::ErrorCode code, const std::string& message) noexcept;

// Converts an exception in flight (call from a catch block) into an OrtStatus naming `where`.
OrtStatus* status_from_current_exception(const char* where) noexcept;

// Runs f() (returning OrtStatus*) and turns any exception into an error status. For functions ORT calls.
template <typename F>
OrtStatus* guard(const char* where, F&& f) noexcept {
  try {
    return f();
  } catch (...) {
    return status_from_current_exception(where);
  }
}

// For void entry points: an exception is logged (ORT has no way to receive it).
void log_current_exception(const char* where) noexcept;
template <typename F>
void guard_void(const char* where, F&& f) noexcept {
  try {
    f();
  } catch (...) {
    log_current_exception(where);
  }
}

// ORT logger (may be NULL: then stderr for warnings and errors).
void log_message(const OrtLogger* logger, ort::LoggingLevel level, const std::string& message, const char* file,
                 int line, const char* func) noexcept;
#define TP_LOG(logger, level, message) \
  ::tp::shim::log_message((logger), (level), (message), __FILE__, __LINE__, __func__)

// Test hook (fact sheet §4.3, "poison padding"): with EP_TRTPY_TEST_POISON_RESERVE=1 in the environment when ORT
// loads the plugin, the trailing reserve of every struct we hand to ORT is filled with the non-NULL junk value 0x10
// instead of zeros. ORT reading past the members of our declared version would then crash instead of passing.
extern bool g_poison_reserve;
template <size_t N>
void fill_reserve(void* (&reserve)[N]) noexcept {
  for (auto& p : reserve) p = g_poison_reserve ? reinterpret_cast<void*>(uintptr_t{0x10}) : nullptr;
}

// The process-wide default logger handed to CreateEpFactories.
extern const OrtLogger* g_default_logger;

// Message of the last failing tp_* runtime call on this thread.
inline std::string runtime_error_message() { return std::string(tp_last_error()); }

// Host (Python) callbacks: a copy of the installed table, or NULL-filled when none is installed.
struct HostCallbacks {
  tp_host_callbacks table{};
  bool installed = false;
};
HostCallbacks host_callbacks() noexcept;

// Takes ownership of a malloc'ed error string from a host callback.
std::string take_host_error(char* error) noexcept;

}  // namespace tp::shim
