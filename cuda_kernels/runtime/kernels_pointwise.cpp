// KernelDef "pointwise": the program interpreter for ep_trtpy::Pointwise (kernels/pointwise.cu).
//
// Parameter layout (written by ep_trtpy/builder/lowering/elementwise.py):
//   inputs   x_0 .. x_{n_in-1}   1..16 tensors; float32, float16, int32, int64 or bool
//   outputs  y_0 .. y_{n_out-1}  1..8 tensors of the output's element count; same dtype set
//   ints     [compute, nreg, ndim, n_code,
//             dims[ndim],                 collapsed output dims, outermost first (product = every output's numel)
//             strides[n_in][ndim],        element strides of each input over those dims (0 = broadcast)
//             code[n_code][6]]            instructions: op, dst, nsrc, a, b, c
//            compute: 0 = float32 arithmetic, 1 = int64 arithmetic; nreg: register slots, 8, 16 or 32;
//            ndim 0..8; n_code 1..96. op: an ep_trtpy.ops.pointwise_program.OPCODES value (nsrc sources a, b, c),
//            or 200 = LOAD (dst <- input a), 201 = STORE (output b <- register a).
//   floats   [imm0, imm1] per instruction (2 * n_code values; unused ones 0)
#include <cmath>
#include <cstring>
#include <limits>

#include "../kernels/pointwise.h"
#include "kernel_util.h"

namespace tp {
namespace {

using kutil::fail;
constexpr const char* kName = "pointwise";

// Register sources of each opcode and whether int64 compute allows it (ep_trtpy.ops.pointwise_program.OPS and
// INT_OPS, through the generated pointwise_ops.inc).
struct OpInfo {
  int nsrc;
  bool int_ok;
};
constexpr OpInfo kOps[pw::kNumOps] = {
#define TP_PW_OP(name, nsrc, int_ok) {nsrc, int_ok},
#include "../kernels/pointwise_ops.inc"
#undef TP_PW_OP
};

bool io_dtype(int32_t t) { return kutil::dtype_in(t, {1, 6, 7, 9, 10, 16}); }

long long to_int64_saturating(double d) {
  if (std::isnan(d)) return 0;
  if (d >= 9.2233720368547758e18) return std::numeric_limits<long long>::max();
  if (d <= -9.2233720368547758e18) return std::numeric_limits<long long>::min();
  return static_cast<long long>(d);
}

template <typename T>
int fill(const Engine& e, const Layer& layer, int compute, int nreg, pw::Params<T>* p, std::string* err) {
  kutil::IntReader r(layer.ints, kName);
  r.next("compute");
  r.next("nreg");
  const int ndim = static_cast<int>(r.next_in("ndim", 0, pw::kMaxDims));
  const int n_code = static_cast<int>(r.next_in("n_code", 1, pw::kMaxCode));
  if (!r.ok()) return fail(err, r.error());
  std::memset(p, 0, sizeof(*p));
  const int n_in = static_cast<int>(layer.inputs.size());
  const int n_out = static_cast<int>(layer.outputs.size());
  p->ndim = ndim;
  p->n_code = n_code;
  p->n_in = n_in;
  p->n_out = n_out;
  long long n = 1;
  std::vector<int64_t> dims;
  r.next_n("dims", ndim, &dims);
  for (int d = 0; d < ndim && r.ok(); ++d) {
    if (dims[d] < 0) return fail(err, std::string(kName) + ": dim " + std::to_string(d) + " is negative");
    p->dims[d] = dims[d];
    n *= dims[d];
  }
  p->n = n;
  for (int o = 0; o < n_out && r.ok(); ++o) {
    const TensorDesc& t = kutil::out_tensor(e, layer, o);
    if (!io_dtype(t.dtype))
      return fail(err, std::string(kName) + ": output " + std::to_string(o) + " '" + t.name + "' is " +
                           kutil::dtype_name(t.dtype) + ", not float32/float16/bfloat16/int32/int64/bool");
    if (t.numel() != n)
      return fail(err, std::string(kName) + ": output " + std::to_string(o) + " '" + t.name + "' has " +
                           std::to_string(t.numel()) + " elements, the program's dims " + kutil::dims_str(dims) +
                           " make " + std::to_string(n));
    p->out_dtype[o] = t.dtype;
  }
  for (int k = 0; k < n_in && r.ok(); ++k) {
    const TensorDesc& t = kutil::in_tensor(e, layer, k);
    if (!io_dtype(t.dtype))
      return fail(err, std::string(kName) + ": input " + std::to_string(k) + " '" + t.name + "' is " +
                           kutil::dtype_name(t.dtype) + ", not float32/float16/bfloat16/int32/int64/bool");
    p->in_dtype[k] = t.dtype;
    long long max_off = 0;
    for (int d = 0; d < ndim; ++d) {
      const int64_t s = r.next("strides");
      if (!r.ok()) break;
      if (s < 0) return fail(err, std::string(kName) + ": input " + std::to_string(k) + " has a negative stride");
      p->strides[k][d] = s;
      if (dims[d] > 0) max_off += (dims[d] - 1) * s;
    }
    if (r.ok() && n > 0 && max_off >= t.numel())
      return fail(err, std::string(kName) + ": input " + std::to_string(k) + " '" + t.name + "' " +
                           kutil::dims_str(t.dims) + " is too small for its strides over dims " +
                           kutil::dims_str(dims) + " (reaches element " + std::to_string(max_off) + ")");
  }
  if (!r.ok()) return fail(err, r.error());
  if (static_cast<int>(layer.floats.size()) != 2 * n_code)
    return fail(err, std::string(kName) + ": " + std::to_string(layer.floats.size()) + " float parameters given, " +
                         std::to_string(2 * n_code) + " (2 per instruction) expected");
  std::vector<bool> written(nreg, false), stored(n_out, false);
  for (int pc = 0; pc < n_code; ++pc) {
    int64_t f[6];
    for (int j = 0; j < 6; ++j) f[j] = r.next("code");
    if (!r.ok()) return fail(err, r.error());
    const std::string where = std::string(kName) + ": instruction " + std::to_string(pc);
    for (int j = 1; j < 6; ++j)
      if (f[j] < 0 || f[j] > 255) return fail(err, where + " has a field outside 0..255");
    pw::Instr& ins = p->code[pc];
    ins.op = static_cast<uint8_t>(f[0]);
    ins.dst = static_cast<uint8_t>(f[1]);
    ins.nsrc = static_cast<uint8_t>(f[2]);
    ins.a = static_cast<uint8_t>(f[3]);
    ins.b = static_cast<uint8_t>(f[4]);
    ins.c = static_cast<uint8_t>(f[5]);
    if (f[0] == pw::kLoad) {
      if (ins.a >= n_in) return fail(err, where + " loads input " + std::to_string(ins.a) + " of " +
                                              std::to_string(n_in));
      if (ins.dst >= nreg) return fail(err, where + " writes register " + std::to_string(ins.dst) +
                                                " beyond nreg " + std::to_string(nreg));
      written[ins.dst] = true;
    } else if (f[0] == pw::kStore) {
      if (ins.a >= nreg || !written[ins.a])
        return fail(err, where + " stores register " + std::to_string(ins.a) + ", which is not set");
      if (ins.b >= n_out) return fail(err, where + " stores to output " + std::to_string(ins.b) + " of " +
                                              std::to_string(n_out));
      stored[ins.b] = true;
    } else {
      if (f[0] < 0 || f[0] >= pw::kNumOps) return fail(err, where + " has unknown opcode " + std::to_string(f[0]));
      const OpInfo& info = kOps[f[0]];
      if (ins.nsrc != info.nsrc)
        return fail(err, where + " (opcode " + std::to_string(f[0]) + ") has " + std::to_string(ins.nsrc) +
                             " sources, expected " + std::to_string(info.nsrc));
      if (compute == 1 && !info.int_ok)
        return fail(err, where + " (opcode " + std::to_string(f[0]) + ") needs float compute");
      const uint8_t src[3] = {ins.a, ins.b, ins.c};
      for (int j = 0; j < ins.nsrc; ++j)
        if (src[j] >= nreg || !written[src[j]])
          return fail(err, where + " reads register " + std::to_string(src[j]) + ", which is not set");
      if (ins.dst >= nreg) return fail(err, where + " writes register " + std::to_string(ins.dst) +
                                                " beyond nreg " + std::to_string(nreg));
      written[ins.dst] = true;
    }
    for (int j = 0; j < 2; ++j) {
      const double d = layer.floats[2 * pc + j];
      if constexpr (sizeof(T) == 8)
        p->imm[pc][j] = to_int64_saturating(d);
      else
        p->imm[pc][j] = static_cast<float>(d);
    }
  }
  if (!r.done()) return fail(err, r.error());
  for (int o = 0; o < n_out; ++o)
    if (!stored[o]) return fail(err, std::string(kName) + ": output " + std::to_string(o) + " is never stored");
  return 0;
}

struct State {
  pw::Plan plan;
  long long max_blocks = 0;
};

int prepare(Engine& e, Layer& layer, std::string* err) {
  if (!kutil::check_arity(layer, kName, 1, pw::kMaxInputs, layer.outputs.size(), err)) return 1;
  if (layer.outputs.empty() || layer.outputs.size() > static_cast<size_t>(pw::kMaxOutputs))
    return fail(err, std::string(kName) + ": " + std::to_string(layer.outputs.size()) + " outputs (1..8 allowed)");
  for (size_t i = 0; i < layer.inputs.size(); ++i)
    if (layer.inputs[i] < 0) return fail(err, std::string(kName) + ": input " + std::to_string(i) + " is absent");
  kutil::IntReader r(layer.ints, kName);
  const int compute = static_cast<int>(r.next_in("compute", 0, 1));
  const int nreg = static_cast<int>(r.next("nreg"));
  if (!r.ok()) return fail(err, r.error());
  if (nreg != 8 && nreg != 16 && nreg != 32)
    return fail(err, std::string(kName) + ": nreg is " + std::to_string(nreg) + ", not 8, 16 or 32");
  auto* st = new State();
  st->plan.compute = compute;
  st->plan.nreg = nreg;
  const int rc = compute == 0 ? fill<float>(e, layer, compute, nreg, &st->plan.f, err)
                              : fill<long long>(e, layer, compute, nreg, &st->plan.i, err);
  if (rc != 0) {
    delete st;
    return rc;
  }
  st->max_blocks = kutil::max_blocks(e.device());
  layer.state = st;
  return 0;
}

int launch(const Engine&, const Layer& layer, const void* const* in, void* const* out, const LaunchContext& ctx,
           std::string* err) {
  const auto* st = static_cast<const State*>(layer.state);
  return kutil::launch_status(pw::launch(st->plan, in, out, ctx.stream, st->max_blocks), kName, err);
}

void release(Layer& layer) {
  delete static_cast<State*>(layer.state);
  layer.state = nullptr;
}

const KernelDef kPointwise = {kName, &prepare, &launch, &release};
TP_REGISTER_KERNEL(kPointwise);

}  // namespace
}  // namespace tp
