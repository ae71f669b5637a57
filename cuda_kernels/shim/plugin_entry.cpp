// Placeholder entry points (filled in by the shim work): no factories yet.
#include <cstddef>
extern "C" {
__attribute__((visibility("default"))) void* CreateEpFactories(const char*, const void*, const void*, void**, size_t,
                                                               size_t* num_factories) {
  *num_factories = 0;
  return nullptr;
}
__attribute__((visibility("default"))) void* ReleaseEpFactory(void*) { return nullptr; }
}
