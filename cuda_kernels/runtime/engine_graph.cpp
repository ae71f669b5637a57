// CUDA graph replay of an engine's launch list (engine.h: run()): one capture per set of input/output pointers,
// kept in a small LRU; a capture that fails, or pointers that keep changing, turn graphs off for the engine.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "engine_internal.h"
#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
using namespace ::tp::lib;  // NOLINT: the runtime's helpers
using namespace ::tp::eng;  // NOLINT

namespace {
constexpr size_t kMaxGraphs = 4;        // pointer sets kept per engine
constexpr uint64_t kMinHitsPerCapture = 2;  // after 16 captures, at least this many replays per capture
}  // namespace

void Engine::set_cuda_graph_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(run_mutex_);
  graph_enabled_ = enabled;
  if (!enabled) drop_graphs();
}

void Engine::drop_graphs() {
  for (auto& g : graphs_)
    if (g.exec != nullptr) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
}

// Replays the graph captured for these pointers, or captures one. *done is false when the caller must launch
// layer by layer (first run, graphs off, or a capture that failed: then graphs stay off for this engine).
int Engine::replay_or_capture(const void* const* inputs, void* const* outputs, cudaStream_t stream, bool* done,
                              std::string* err) {
  *done = false;
  if (!graph_enabled_ || !has_run_) return 0;  // the first run is direct: libraries finish lazy setup there
  std::vector<const void*> key;
  key.reserve(static_cast<size_t>(n_inputs_ + n_outputs_));
  for (int i = 0; i < n_inputs_; ++i) key.push_back(inputs[i]);
  for (int i = 0; i < n_outputs_; ++i) key.push_back(outputs[i]);
  ++graph_clock_;
  GraphEntry* hit = nullptr;
  for (auto& g : graphs_)
    if (g.key == key) hit = &g;
  if (hit == nullptr) {
    if (graph_captures_ >= 16 && graph_replays_ < kMinHitsPerCapture * graph_captures_) {
      graph_enabled_ = false;
      graph_off_reason_ = "input/output pointers change between runs (capturing would cost more than it saves)";
      drop_graphs();
      return 0;
    }
    if (order_after_previous_run(stream, err) != 0) return 1;
    std::lock_guard<std::mutex> no_prepare_meanwhile(capture_exclusion());
    cudaGetLastError();
    cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
      cudaGetLastError();
      graph_enabled_ = false;
      graph_off_reason_ = cuda_message("cudaStreamBeginCapture", e);
      return 0;
    }
    std::string launch_err;
    int rc = launch_layers(stream, nullptr, nullptr, &launch_err);
    cudaGraph_t graph = nullptr;
    e = cudaStreamEndCapture(stream, &graph);
    cudaGraphExec_t exec = nullptr;
    if (rc == 0 && e == cudaSuccess && graph != nullptr) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (rc != 0 || e != cudaSuccess || exec == nullptr) {
      cudaGetLastError();
      graph_enabled_ = false;
      graph_off_reason_ = rc != 0 ? "a layer could not be captured: " + launch_err
                                  : cuda_message("capturing the launch list", e);
      if (exec != nullptr) cudaGraphExecDestroy(exec);
      drop_graphs();
      return 0;  // nothing ran: the caller launches layer by layer
    }
    if (graphs_.size() >= kMaxGraphs) {
      auto oldest = graphs_.begin();
      for (auto it = graphs_.begin(); it != graphs_.end(); ++it)
        if (it->last_use < oldest->last_use) oldest = it;
      cudaGraphExecDestroy(oldest->exec);
      graphs_.erase(oldest);
    }
    graphs_.push_back(GraphEntry{std::move(key), exec, graph_clock_});
    hit = &graphs_.back();
    ++graph_captures_;
    tp_counter_add(TP_COUNTER_GRAPH_CAPTURES, 1);
  } else {
    if (order_after_previous_run(stream, err) != 0) return 1;
    ++graph_replays_;
    tp_counter_add(TP_COUNTER_GRAPH_REPLAYS, 1);
  }
  hit->last_use = graph_clock_;
  cudaError_t e = cudaGraphLaunch(hit->exec, stream);
  if (e == cudaSuccess) e = cudaEventRecord(last_done_, stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *err = cuda_message("cudaGraphLaunch", e);
    return 1;
  }
  last_stream_ = stream;
  *done = true;
  return 0;
}

}  // namespace tp
