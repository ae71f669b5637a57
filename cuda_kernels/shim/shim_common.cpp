// Status helpers, logging and the host-callback accessor of the plugin shim.
#include "shim_common.h"

#include <cstdio>
#include <cstdlib>
#include <new>

namespace tp::shim {

const OrtApi* g_api = nullptr;
const OrtEpApi* g_ep_api = nullptr;
const OrtModelEditorApi* g_model_editor_api = nullptr;
const OrtLogger* g_default_logger = nullptr;
bool g_poison_reserve = false;

std::string take_status_message(OrtStatus* status) noexcept {
  if (status == nullptr) return std::string();
  std::string message;
  try {
    const char* m = api<ort::api::GetErrorMessage>()(status);
    message = m ? m : "(no message)";
  } catch (...) {
  }
  api<ort::api::ReleaseStatus>()(status);
  return message;
}

void check(OrtStatus* status, const char* what) {
  if (status == nullptr) return;
  ort::ErrorCode code = api<ort::api::GetErrorCode>()(status);
  std::string message = take_status_message(status);
  throw OrtError(code == ort::kOk ? ort::kFail : code, std::string(what) + ": " + message);
}

OrtStatus* make_status(ort::ErrorCode code, const std::string& message) noexcept {
  if (g_api == nullptr) return nullptr;  // cannot happen after CreateEpFactories
  return api<ort::api::CreateStatus>()(code, message.c_str());
}

OrtStatus* status_from_current_exception(const char* where) noexcept {
  try {
    throw;
  } catch (const OrtError& e) {
    return make_status(e.code(), std::string(kEpName) + " " + where + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return make_status(ort::kFail, std::string(kEpName) + " " + where + ": out of host memory");
  } catch (const std::exception& e) {
    return make_status(ort::kFail, std::string(kEpName) + " " + where + ": " + e.what());
  } catch (...) {
    return make_status(ort::kFail, std::string(kEpName) + " " + where + ": unknown C++ exception");
  }
}

void log_current_exception(const char* where) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    TP_LOG(g_default_logger, ort::kError, std::string(kEpName) + " " + where + ": " + e.what());
  } catch (...) {
    TP_LOG(g_default_logger, ort::kError, std::string(kEpName) + " " + where + ": unknown C++ exception");
  }
}

void log_message(const OrtLogger* logger, ort::LoggingLevel level, const std::string& message, const char* file,
                 int line, const char* func) noexcept {
  if (logger != nullptr && g_api != nullptr) {
    OrtStatus* st = api<ort::api::Logger_LogMessage>()(logger, level, message.c_str(), file, line, func);
    if (st == nullptr) return;
    api<ort::api::ReleaseStatus>()(st);
  }
  if (level >= ort::kWarning) std::fprintf(stderr, "[ep_trtpy] %s\n", message.c_str());
}

HostCallbacks host_callbacks() noexcept {
  HostCallbacks out;
  const tp_host_callbacks* table = tp_get_host_callbacks();
  if (table != nullptr && table->version == TP_HOST_CALLBACKS_VERSION) {
    out.table = *table;
    out.installed = true;
  }
  return out;
}

std::string take_host_error(char* error) noexcept {
  std::string message;
  try {
    message = error ? error : "the Python host reported a failure without a message";
  } catch (...) {
  }
  std::free(error);
  return message;
}

}  // namespace tp::shim
