// Tactic search shared by the library-backed kernels ("conv", "attention", "gemm"): how many candidates a
// tuning level times, and a timer that runs candidates on a private stream between CUDA events.
//
// Levels (Engine::set_tuning_level): 0 = heuristics only (the first candidate, nothing timed); 1..4 = time the
// first 2, 4, 8, 16 candidates in the libraries' heuristic order; 5 = time every candidate.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>

#include "tp/engine.h"

namespace tp {
namespace lib {

int candidates_to_time(int level, int available);

// The tactics chosen in this process, by layer signature (kernel, device, tuning level, ints, floats, input
// dtypes and dims): a layer with the signature of one prepared before (BERT's twelve identical attention layers,
// a ResNet stage's repeated convolutions) takes that layer's tactic instead of timing the same candidates again.
std::string tactic_signature(const char* kernel, int tuning_level, const Layer& layer, const Engine& engine);
std::string remembered_tactic(const std::string& signature);  // "" when none
void remember_tactic(const std::string& signature, const std::string& tactic_name);

class CandidateTimer {
 public:
  CandidateTimer() = default;
  ~CandidateTimer();
  CandidateTimer(const CandidateTimer&) = delete;
  CandidateTimer& operator=(const CandidateTimer&) = delete;

  int init(std::string* err);  // 0, or 1 with *err
  cudaStream_t stream() const { return stream_; }
  // Median milliseconds of `reps` runs after two warm-ups; +inf when `run` returns non-zero or CUDA reports an
  // error (cleared). `run` enqueues one execution on the given stream. Counts into the tactics_timed counter.
  double time(const std::function<int(cudaStream_t)>& run, int reps = 5);

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t begin_ = nullptr, end_ = nullptr;
};

}  // namespace lib
}  // namespace tp
