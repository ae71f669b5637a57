// Helpers shared by the engine's source files (engine.cpp, engine_finalize.cpp, engine_run.cpp,
// engine_graph.cpp): alignment and the labels of error messages. Internal to the runtime.
#pragma once

#include <cstddef>
#include <string>

#include "tp/engine.h"

namespace tp {
namespace eng {

constexpr size_t kAlign = 256;

inline size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

inline const char* kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::Input: return "input";
    case TensorKind::Output: return "output";
    case TensorKind::Weight: return "weight";
    case TensorKind::Activation: return "activation";
    case TensorKind::Alias: return "alias";
  }
  return "?";
}

inline std::string tensor_label(const TensorDesc& t, size_t id) {
  return "tensor " + std::to_string(id) + " '" + t.name + "' (" + kind_name(t.kind) + ")";
}

inline std::string layer_label(const Layer& l) { return "layer '" + l.name + "' (" + l.kernel + ")"; }

}  // namespace eng
}  // namespace tp
