// Registry of native kernels (name -> prepare/launch/release), filled by static registrars in each kernel file.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tp/engine.h"
#include "tp/onnx_dtype.h"

namespace tp {
namespace {
std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, const KernelDef*>& registry() {
  static std::map<std::string, const KernelDef*> r;
  return r;
}
}  // namespace

void register_kernel(const KernelDef* def) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[def->name] = def;
}

const KernelDef* find_kernel(const std::string& name) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : it->second;
}

std::vector<std::string> kernel_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (auto& kv : registry()) names.push_back(kv.first);
  return names;
}

size_t dtype_size(int32_t t) {
  const onnx::DtypeInfo* d = onnx::dtype_info(t);
  return d ? d->size : 0;  // strings and unknown types: 0
}

}  // namespace tp
