// The state of one "conv" layer (kernels_conv.cpp) shared by its two implementations: the legacy cuDNN API in
// NCHW (conv_nchw.cpp) and the channels-last tactics (conv_nhwc.cpp: cuDNN graph-API plans with fused epilogues,
// and our depthwise kernel).
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "../kernels/conv_nhwc.h"
#include "../kernels/conv_small_c.h"
#include "cudnn_conv_common.h"
#include "cudnn_graph.h"
#include "tp/engine.h"
#include "tp/library_epilogues.h"

namespace tp {
namespace lib {

// Activation codes of the "conv" layout (ints[2]); the same numbering as GraphAct.
enum ConvAct : int { kConvNone = 0, kConvRelu, kConvClip, kConvSigmoid, kConvSilu, kConvLeakyRelu, kConvHardSwish,
                     kConvTanh, kConvActCount };

// The epilogue kernel's code of a conv activation.
int epilogue_act(int conv_act);

struct ConvParams {
  int k = 2;              // spatial rank
  int64_t group = 1;
  int act = kConvNone;
  float alpha = 0.f, beta = 0.f;
  bool nhwc = false;      // layout 1
  bool tf32 = false;      // math 1 (float32 only)
  int dtype = 1;
  size_t esize = 4;
  bool has_bias = false, has_z = false;
  bool z_after_act = false;  // Y = act(conv + B) + Z (ints' trailing post = 1)
  std::vector<int64_t> pb, pe, st, dil;
  int64_t n = 0, c = 0, cout = 0, cg = 0;
  std::vector<int64_t> in_sp, k_sp, out_sp;  // spatial extents of X, W, Y
  int64_t out_plane = 1;                      // product of out_sp
};

enum class ConvMode { Empty, NoInput, Legacy, Graph, Depthwise, SmallC };

struct ConvState {
  ConvParams p;
  ConvMode mode = ConvMode::Legacy;
  // legacy NCHW (conv_nchw.cpp)
  CudnnConvDescs d;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t cudnn_ws = 0;
  bool prepad = false;
  WindowCopyArgs pad;
  size_t pad_offset = 0;
  bool fused = false;  // cudnnConvolutionBiasActivationForward
  // channels-last (conv_nhwc.cpp)
  std::unique_ptr<FusedGraph> graph;  // the chosen plan's graph
  int plan = -1;
  bool epi_bias = false, epi_residual = false, epi_act = false;  // what our epilogue adds after the plan
  nhwc::Window win;
  void* w_rsc = nullptr;  // depthwise weights as [R, S, C], owned (nullptr: reordered into the workspace per run)
  nhwc::DepthwiseTile tile;  // the tiled depthwise kernel's tile (rows 0: that kernel does not apply)
  size_t w_rsc_offset = 0;
  int device = 0;
  ~ConvState();
};

// Adds to Y [rows, cols] (NHWC: rows N*P*Q, cols K; NCHW: batch N, rows K, cols P*Q) the bias, the residual and
// the activation, as `bias`, `residual`, `act` say; the residual before or after the activation as p.z_after_act
// says (a residual after it with act_on false is added to Y as it is: the activation was applied before).
int conv_epilogue(const ConvState& s, void* y, const void* bias, const void* z, bool bias_on, bool residual_on,
                  bool act_on, cudaStream_t stream, std::string* err);

int conv_nchw_prepare(Engine& engine, Layer& layer, ConvState& s, std::string* err);
int conv_nchw_launch(const Engine& engine, const Layer& layer, ConvState& s, const void* const* in, void* const* out,
                     const LaunchContext& ctx, std::string* err);
int conv_nhwc_prepare(Engine& engine, Layer& layer, ConvState& s, std::string* err);
int conv_nhwc_launch(const Engine& engine, const Layer& layer, ConvState& s, const void* const* in, void* const* out,
                     const LaunchContext& ctx, std::string* err);

}  // namespace lib
}  // namespace tp
