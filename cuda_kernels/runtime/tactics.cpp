// Tactic search helpers (tactics.h).
#include "tactics.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "tp/library_support.h"
#include "tp/runtime_api.h"

namespace tp {
namespace lib {

int candidates_to_time(int level, int available) {
  if (level <= 0 || available <= 1) return 0;
  if (level >= 5) return available;
  return std::min(available, 1 << level);  // 2, 4, 8, 16
}

CandidateTimer::~CandidateTimer() {
  if (begin_) cudaEventDestroy(begin_);
  if (end_) cudaEventDestroy(end_);
  if (stream_) cudaStreamDestroy(stream_);
}

int CandidateTimer::init(std::string* err) {
  if (stream_) return 0;
  TP_TRY_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  TP_TRY_CUDA(cudaEventCreate(&begin_));
  TP_TRY_CUDA(cudaEventCreate(&end_));
  return 0;
}

double CandidateTimer::time(const std::function<int(cudaStream_t)>& run, int reps) {
  const double inf = std::numeric_limits<double>::infinity();
  tp_counter_add(TP_COUNTER_TACTICS_TIMED, 1);
  cudaGetLastError();
  for (int i = 0; i < 2; ++i)
    if (run(stream_) != 0) {
      cudaGetLastError();
      return inf;
    }
  std::vector<double> ms;
  for (int i = 0; i < std::max(reps, 1); ++i) {
    if (cudaEventRecord(begin_, stream_) != cudaSuccess || run(stream_) != 0 ||
        cudaEventRecord(end_, stream_) != cudaSuccess || cudaEventSynchronize(end_) != cudaSuccess) {
      cudaGetLastError();
      return inf;
    }
    float t = 0.f;
    if (cudaEventElapsedTime(&t, begin_, end_) != cudaSuccess) {
      cudaGetLastError();
      return inf;
    }
    ms.push_back(t);
  }
  if (cudaGetLastError() != cudaSuccess) return inf;
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace lib
}  // namespace tp
