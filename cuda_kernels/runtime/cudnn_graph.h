// cuDNN graph API (through the header-only cuDNN frontend) for the kernels that need fused cuDNN graphs:
// convolution + bias + residual + activation (or + bias + activation + residual) in NHWC ("conv"), and flash
// attention ("attention").
//
// This header keeps the frontend's heavy headers out of the kernel files: only cudnn_graph.cpp includes them.
// A FusedGraph is one operation graph with its list of candidate engine configurations (cuDNN's heuristics,
// modes A then FALLBACK, deduplicated by name); each candidate is built on demand and run by index. Candidate
// names ("eng4_k24=26") identify an engine configuration within one cuDNN version: the tuner stores them as
// tactic names.
//
// Tensor uids of the graphs below: conv X 1, W 2, B 3, Z 4, Y 5; attention Q 1, K 2, V 3, M 4, O 5.
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tp {
namespace lib {

// Activations a fused cuDNN graph can end with (the "conv" kernel's codes).
enum GraphAct : int {
  kGraphActNone = 0,
  kGraphActRelu = 1,
  kGraphActClip = 2,
  kGraphActSigmoid = 3,
  kGraphActSilu = 4,
  kGraphActLeakyRelu = 5,
  kGraphActHardSwish = 6,
  kGraphActTanh = 7,
};

// A 2-D convolution in channels-last layout: X [N, H, W, C], W [K, R, S, C/g], Y and Z [N, P, Q, K], B [K].
struct ConvGraphSpec {
  int dtype = 10;        // ONNX dtype of X, W, B, Z, Y: 1, 10 or 16
  bool tf32 = false;     // float32 data may use TF32 tensor cores
  int64_t n = 0, c = 0, h = 0, w = 0, k = 0, r = 0, s = 0, p = 0, q = 0, group = 1;
  int64_t pad_begin[2] = {0, 0}, pad_end[2] = {0, 0}, stride[2] = {1, 1}, dilation[2] = {1, 1};
  bool bias = false, residual = false;
  bool residual_after_act = false;  // Y = act(conv + B) + Z instead of act(conv + B + Z)
  int act = kGraphActNone;
  float alpha = 0.f, beta = 0.f;  // activation parameters (clip bounds, leaky slope)
};

// Scaled dot-product attention: O = softmax(scale * Q K^T + M) V for every (b, h); strides in elements.
struct AttentionGraphSpec {
  int dtype = 10;  // Q, K, V, O, M: 10 or 16
  int64_t b = 0, h = 0, sq = 0, skv = 0, d = 0, dv = 0;
  int64_t q_stride[4] = {0, 0, 0, 0}, k_stride[4] = {0, 0, 0, 0}, v_stride[4] = {0, 0, 0, 0},
          o_stride[4] = {0, 0, 0, 0};  // for dims [b, h, s, d]
  bool mask = false;
  int64_t m_dim[4] = {1, 1, 1, 1}, m_stride[4] = {0, 0, 0, 0};
  float scale = 1.f;
  // Batch and sequence lengths vary between the engines of one program (a specialized engine): build the graph
  // for dynamic shapes with a process-wide kernel cache per topology, so a new length binds the kernel compiled
  // for an earlier one instead of compiling its own; a static graph when cuDNN refuses that.
  bool dynamic = false;
};

class FusedGraph {
 public:
  ~FusedGraph();
  FusedGraph(const FusedGraph&) = delete;
  FusedGraph& operator=(const FusedGraph&) = delete;

  // The operation graph and its candidates; 0, or 1 with *err when cuDNN refuses the graph. A float32 conv graph
  // leaves out engines that read float32 inputs as float16/bfloat16 (TF32 is the least precision it accepts)
  // unless cuDNN offers nothing else.
  static int conv(cudnnHandle_t h, const ConvGraphSpec& spec, std::unique_ptr<FusedGraph>* out, std::string* err);
  static int attention(cudnnHandle_t h, const AttentionGraphSpec& spec, std::unique_ptr<FusedGraph>* out,
                       std::string* err);

  int candidates() const;
  const std::string& name(int i) const;
  bool runtime_compiled(int i) const;  // cuDNN compiles the kernel with NVRTC when the plan is built
  // Build candidate i (idempotent). 0, or 1 with *err.
  int build(int i, std::string* err);
  bool built(int i) const;
  size_t workspace(int i) const;  // valid after build
  // Run a built candidate: uids/ptrs in any order. 0, or 1 with *err. Never synchronizes.
  int execute(cudnnHandle_t h, int i, const int64_t* uids, void* const* ptrs, int n, void* workspace,
              std::string* err) const;
  // Index of the candidate named `name`, or -1.
  int find(const std::string& name) const;
  // Built candidate i as bytes: cuDNN's serialized execution plan (for a runtime-compiled engine, with its
  // compiled kernel); for a restored graph, the bytes it was restored from. 0, or 1 with *err.
  int serialize(int i, std::string* out, std::string* err);
  // A graph whose only candidate (0, built, named `name`) is the plan serialize() wrote: no heuristics, no
  // compilation. 0, or 1 with *err (bytes of another cuDNN version or GPU, damaged bytes).
  static int restore(cudnnHandle_t h, const std::string& bytes, const std::string& name,
                     std::unique_ptr<FusedGraph>* out, std::string* err);

  struct Impl;  // the frontend graph (cudnn_graph.cpp)

 private:
  explicit FusedGraph(std::unique_ptr<Impl> impl);
  static int attention_graph(cudnnHandle_t h, const AttentionGraphSpec& spec, bool dynamic,
                             std::unique_ptr<FusedGraph>* out, std::string* err);  // one attempt
  static int conv_graph(cudnnHandle_t h, const ConvGraphSpec& spec, bool exact_inputs, std::unique_ptr<FusedGraph>* out,
                        std::string* err);  // one attempt; exact_inputs: no engine that down-converts its inputs
  std::unique_ptr<Impl> impl_;
};

}  // namespace lib
}  // namespace tp
