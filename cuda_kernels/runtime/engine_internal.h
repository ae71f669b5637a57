// Helpers shared by the engine's source files (engine.cpp, engine_finalize.cpp, engine_run.cpp,
// engine_graph.cpp): alignment and the labels of error messages. Internal to the runtime.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>

#include "tp/engine.h"

namespace tp {
namespace eng {

constexpr size_t kAlign = 256;

inline size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// One process-wide lock between CUDA-graph captures and the layers' prepare (engine builds). Prepare synchronizes
// the whole device (library setup, tactic timing, a final check for sticky errors), and a device-wide synchronize
// while another thread's stream is capturing fails with cudaErrorStreamCaptureUnsupported (seen on the H200 with
// eight threads running one session while first-seen shapes built). Captures are rare (one per pointer set) and
// short, so they wait for a build; a build waits for at most one capture.
inline std::mutex& capture_exclusion() {
  static std::mutex m;
  return m;
}

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
