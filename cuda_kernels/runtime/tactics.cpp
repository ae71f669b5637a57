// Tactic search helpers (tactics.h).
#include "tactics.h"

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <vector>

#include "tp/library_support.h"
#include "tp/runtime_api.h"

namespace tp {
namespace lib {

namespace {

std::mutex g_memo_mu;
std::map<std::string, std::string>& memo() {
  static std::map<std::string, std::string> m;
  return m;
}

}  // namespace

std::string tactic_signature(const char* kernel, int tuning_level, const Layer& layer, const Engine& engine) {
  std::string sig = std::string(kernel) + "|" + std::to_string(engine.device()) + "|" + std::to_string(tuning_level);
  for (int64_t v : layer.ints) sig += "," + std::to_string(v);
  for (double v : layer.floats) sig += "," + std::to_string(v);
  for (int id : layer.inputs) {
    sig += "|";
    if (id < 0) continue;
    const TensorDesc& t = engine.tensor(id);
    sig += std::to_string(t.dtype) + ":";
    for (int64_t d : t.dims) sig += std::to_string(d) + "x";
  }
  return sig;
}

std::string remembered_tactic(const std::string& signature) {
  std::lock_guard<std::mutex> lock(g_memo_mu);
  auto it = memo().find(signature);
  return it == memo().end() ? std::string() : it->second;
}

void remember_tactic(const std::string& signature, const std::string& tactic_name) {
  std::lock_guard<std::mutex> lock(g_memo_mu);
  memo()[signature] = tactic_name;
}

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
