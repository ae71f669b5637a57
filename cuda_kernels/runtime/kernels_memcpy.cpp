// Kernel "memcpy": device-to-device copy of a byte range.
//
// Parameter layout (mirrored by ep_trtpy/builder/lowering/__init__.py LowerCtx.alias/finish and
// ep_trtpy/builder/lowering/movement_alias.py):
//   inputs  [src]          any dtype
//   outputs [dst]          any dtype
//   ints    [nbytes]       bytes copied from the start of src to the start of dst; nbytes <= both tensors' sizes
//   floats  []
//   tactic  unused; workspace 0
#include <string>

#include "tp/engine.h"
#include "tp/library_support.h"

namespace tp {
namespace {
using namespace ::tp::lib;  // NOLINT: this file's helpers

int memcpy_prepare(Engine& engine, Layer& layer, std::string* err) {
  TP_REQUIRE(layer.inputs.size() == 1 && layer.outputs.size() == 1, "expects 1 input and 1 output");
  TP_REQUIRE(layer.ints.size() == 1, "expects ints [nbytes]");
  TP_REQUIRE(layer.inputs[0] >= 0, "the source tensor is missing");
  const int64_t nbytes = layer.ints[0];
  const TensorDesc& src = engine.tensor(layer.inputs[0]);
  const TensorDesc& dst = engine.tensor(layer.outputs[0]);
  TP_REQUIRE(nbytes >= 0 && nbytes <= src.nbytes && nbytes <= dst.nbytes,
             "copies " + std::to_string(nbytes) + " bytes from '" + src.name + "' (" + std::to_string(src.nbytes) +
                 " bytes) to '" + dst.name + "' (" + std::to_string(dst.nbytes) + " bytes)");
  layer.tactic = 0;
  layer.workspace = 0;
  return 0;
}

int memcpy_launch(const Engine&, const Layer& layer, const void* const* in, void* const* out,
                  const LaunchContext& ctx, std::string* err) {
  const size_t nbytes = static_cast<size_t>(layer.ints[0]);
  if (nbytes == 0 || in[0] == out[0]) return 0;
  TP_TRY_CUDA(cudaMemcpyAsync(out[0], in[0], nbytes, cudaMemcpyDeviceToDevice, ctx.stream));
  return 0;
}

const KernelDef kMemcpy = {"memcpy", memcpy_prepare, memcpy_launch, nullptr};
TP_REGISTER_KERNEL(kMemcpy);

}  // namespace
}  // namespace tp
