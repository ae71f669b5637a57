// The OrtEp instance (one per session) and the per-fused-node program state that Compute runs.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "factory.h"

namespace tp::shim {

// One compiled fused node: the Python program id, which fused-node inputs the engine consumes, and a small cache
// of engines by exact input shapes. Compute may run concurrently (ORT pool threads): `mu` guards `engines` and is
// not held while the host builds one.
struct Program {
  int64_t program_id = -1;
  std::string node_name;
  int device_id = -1;                   // CUDA ordinal; -1 = numpy reference backend
  std::vector<int64_t> runtime_inputs;  // indices into the fused node's inputs, in engine input order
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;

  std::mutex mu;
  std::vector<std::pair<std::vector<std::vector<int64_t>>, tp_engine*>> engines;  // borrowed from Python

  Program() = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  ~Program();  // tells the host to release the program (and with it the engines)
};

struct Ep {
  OrtEp base{};  // first member
  Factory* factory = nullptr;
  const OrtLogger* logger = nullptr;
  int64_t ep_id = -1;  // the Python-side EP object
  int device_id = -1;  // CUDA ordinal; -1 = numpy reference backend

  bool context_enable = false;  // session entry ep.context_enable=1: Compile returns EPContext nodes

  // Why this EP cannot work (bad options, no Python host...), reported from Compile; see ep.cpp.
  std::string refusal;
  ort::ErrorCode refusal_code = ort::kOk;

  std::mutex mu;
  std::map<std::string, std::shared_ptr<Program>> programs;  // by fused node name
};

inline Ep* as_ep(OrtEp* e) { return reinterpret_cast<Ep*>(e); }

// compute.cpp: the OrtNodeComputeInfo of one fused node.
OrtNodeComputeInfo* new_compute_info(Ep* ep, std::shared_ptr<Program> program);
void delete_compute_info(OrtNodeComputeInfo* info) noexcept;

// ep_context.cpp: the EPContext node that stands for a compiled program in the context model (ORT owns it).
OrtNode* create_ep_context_node(const HostCallbacks& cb, const Program& program);

}  // namespace tp::shim
