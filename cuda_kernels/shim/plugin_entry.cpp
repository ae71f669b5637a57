// The two symbols ORT resolves in a plugin EP library (and the only two this library exports; see
// cmake/plugin_exports.lds). Static state is cheap and re-runnable: ORT loads, unloads and reloads the library once
// while probing it (fact sheet §1.1).
#include <cstdlib>
#include <cstring>
#include <string>

#include "factory.h"

namespace {

using namespace tp::shim;
namespace ort = tp::ort;

// A status from whatever table answers when ours does not (all versions share one table).
OrtStatus* refuse(const OrtApiBase* base, const std::string& message) noexcept {
  tp_set_abi_report(message.c_str());
  const OrtApi* any = base->GetApi(1);
  if (any == nullptr) return nullptr;
  return ort::slot_fn<ort::api::CreateStatus>(any)(ort::kFail, message.c_str());
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) OrtStatus* CreateEpFactories(const char* /*registration_name*/,
                                                                     const OrtApiBase* base,
                                                                     const OrtLogger* default_logger,
                                                                     OrtEpFactory** factories, size_t max_factories,
                                                                     size_t* num_factories) noexcept {
  if (num_factories != nullptr) *num_factories = 0;
  if (base == nullptr || base->GetApi == nullptr || factories == nullptr || num_factories == nullptr) return nullptr;
  try {
    const OrtApi* table = base->GetApi(ort::kTargetApiVersion);
    if (table == nullptr) {
      const char* v = base->GetVersionString ? base->GetVersionString() : nullptr;
      return refuse(base, std::string("ep_trtpy needs ONNX Runtime 1.24 or newer (plugin API version 24); this "
                                      "process runs ONNX Runtime ") +
                              (v ? v : "of unknown version"));
    }
    g_api = table;
    g_default_logger = default_logger;
    const char* poison = std::getenv("EP_TRTPY_TEST_POISON_RESERVE");
    g_poison_reserve = poison != nullptr && std::strcmp(poison, "1") == 0;
    g_ep_api = ort::slot_fn<ort::api::GetEpApi>(table)();
    g_model_editor_api = ort::slot_fn<ort::api::GetModelEditorApi>(table)();
    const std::string failure = run_abi_probes(base);
    if (!failure.empty()) return make_status(ort::kFail, failure);
    if (max_factories < 1) return make_status(ort::kInvalidArgument, "ORT offered no room for a factory");
    factories[0] = &create_factory()->base;
    *num_factories = 1;
    return nullptr;
  } catch (...) {
    return g_api ? status_from_current_exception("CreateEpFactories") : nullptr;
  }
}

__attribute__((visibility("default"))) OrtStatus* ReleaseEpFactory(OrtEpFactory* factory) noexcept {
  destroy_factory(as_factory(factory));
  return nullptr;
}

}  // extern "C"
