// Tactic search shared by the library-backed kernels ("conv", "attention", "gemm"): how many candidates a
// tuning level times, and a timer that runs candidates on a private stream between CUDA events.
//
// Levels (Engine::set_tuning_level): 0 = heuristics only (the first candidate, nothing timed); 1..4 = time the
// first 2, 4, 8, 16 candidates in the libraries' heuristic order; 5 = time every candidate.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>

namespace tp {
namespace lib {

int candidates_to_time(int level, int available);

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
