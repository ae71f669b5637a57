// Registry of native kernels (name -> prepare/launch/release), filled by static registrars in each kernel file.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tp/engine.h"

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
  switch (t) {
    case 1: return 4;   // float
    case 2: return 1;   // uint8
    case 3: return 1;   // int8
    case 4: return 2;   // uint16
    case 5: return 2;   // int16
    case 6: return 4;   // int32
    case 7: return 8;   // int64
    case 9: return 1;   // bool
    case 10: return 2;  // float16
    case 11: return 8;  // double
    case 12: return 4;  // uint32
    case 13: return 8;  // uint64
    case 16: return 2;  // bfloat16
    default: return 0;
  }
}

}  // namespace tp
