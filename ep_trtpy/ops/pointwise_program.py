"""The pointwise program: a chain of elementwise ops evaluated per output element, in registers.

This module is the specification of the internal op ``ep_trtpy::Pointwise``. The fusion pass builds programs,
the numpy interpreter below is the reference (and the reference backend's implementation), and the CUDA kernel
``pointwise`` (cuda_kernels/kernels/pointwise.cu) must compute the same function.

Op ``ep_trtpy::Pointwise``
    inputs   x_0 .. x_{n-1}: any shapes that broadcast (numpy rules) to the output shape; dtypes float32, float16,
             bfloat16, int32, int64, bool.
    outputs  y_0 .. y_{m-1}: all of the broadcast shape.
    attr     program (str): JSON ``{"compute": "float" | "int64", "code": [...], "outputs": [[reg, dtype], ...]}``.

Registers ``0 .. n-1`` hold the inputs, converted to the compute type on load (float16/bfloat16 -> float,
int -> float, bool -> 0/1). Each instruction is a list ``[op, dst, src..., imm...]``: the number of register sources and of
immediates per op is :data:`OPS`. Registers may be overwritten. Each output is ``[register, onnx_dtype]`` and is
converted on store (to float16 and bfloat16 with round-to-nearest-even, to ints by truncation toward zero, to bool
as != 0).

Compute types: ``"float"`` does float32 arithmetic; ``"int64"`` does 64-bit integer arithmetic and only allows the
ops marked integer-capable in :data:`INT_OPS`.

Limits the GPU kernel is built for (the fusion pass respects them): :data:`MAX_INPUTS` inputs,
:data:`MAX_OUTPUTS` outputs, :data:`MAX_REGS` registers, :data:`MAX_CODE` instructions.

Semantics (float compute; ``t(x)`` is truthiness ``x != 0``, comparisons and logic give 1.0 or 0.0; every
min/max below, Relu's and Clip's included, propagates NaN as numpy's minimum/maximum do, and comparisons with NaN are
false, so thresholded_relu(NaN) is 0):
    mov a; const imm; neg; abs; relu max(x,0); sigmoid 1/(1+e^-x); tanh; erf; exp; log; sqrt; reciprocal 1/x;
    floor; ceil; round (half to even); sign; sin; cos; isnan; isinf; not !t(x);
    gelu 0.5x(1+erf(x/sqrt2)); gelu_tanh 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)));
    softplus log(1+e^x) (x for x>20); softsign x/(1+|x|); hard_swish x*clamp(x/6+1/2, 0, 1);
    add sub mul div pow; min max (NaN-propagating, like numpy); mod a,b,fmod (fmod=1: C fmod; fmod=0: result
    takes the sign of b, like Python); eq lt gt le ge; and or xor; prelu x,s (x<0 ? s*x : x);
    where c,a,b (t(c) ? a : b); leaky_relu x,alpha; elu x,alpha; thresholded_relu x,alpha (x>alpha ? x : 0);
    celu x,alpha; hard_sigmoid x,alpha,beta (clamp(alpha*x+beta,0,1)); selu x,alpha,gamma; clip x,lo,hi
    (min(max(x,lo),hi)); cast x,to (round to the value set of dtype `to` and back: float16 or bfloat16 rounding,
    integer truncation toward zero, bool as t(x)).
In int64 compute, div truncates toward zero (C semantics, as ONNX runtimes do), pow is the exact integer power
(wrapping on overflow; a negative exponent truncates the real result: 0 unless the base is 1 or -1), and immediates (const, clip bounds) saturate to the int64 range (NaN becomes 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from graph_partitioner.ir import BFLOAT16, BOOL, FLOAT, FLOAT16, INT32, INT64, np_dtype

MAX_INPUTS = 16
MAX_OUTPUTS = 8
MAX_REGS = 32
MAX_CODE = 64

# op -> (number of register sources, number of immediates)
OPS: dict[str, tuple[int, int]] = {
    "mov": (1, 0), "const": (0, 1),
    "neg": (1, 0), "abs": (1, 0), "relu": (1, 0), "sigmoid": (1, 0), "tanh": (1, 0), "erf": (1, 0),
    "exp": (1, 0), "log": (1, 0), "sqrt": (1, 0), "reciprocal": (1, 0), "floor": (1, 0), "ceil": (1, 0),
    "round": (1, 0), "sign": (1, 0), "sin": (1, 0), "cos": (1, 0), "isnan": (1, 0), "isinf": (1, 0),
    "not": (1, 0), "gelu": (1, 0), "gelu_tanh": (1, 0), "softplus": (1, 0), "softsign": (1, 0),
    "hard_swish": (1, 0),
    "add": (2, 0), "sub": (2, 0), "mul": (2, 0), "div": (2, 0), "pow": (2, 0), "min": (2, 0), "max": (2, 0),
    "mod": (2, 1), "eq": (2, 0), "lt": (2, 0), "gt": (2, 0), "le": (2, 0), "ge": (2, 0), "and": (2, 0),
    "or": (2, 0), "xor": (2, 0), "prelu": (2, 0),
    "where": (3, 0),
    "leaky_relu": (1, 1), "elu": (1, 1), "thresholded_relu": (1, 1), "celu": (1, 1),
    "hard_sigmoid": (1, 2), "selu": (1, 2), "clip": (1, 2), "cast": (1, 1),
}
OPCODES: dict[str, int] = {name: i for i, name in enumerate(OPS)}
"""Stable numbering used by the native encoding (append only)."""

INT_OPS = frozenset({
    "mov", "const", "neg", "abs", "relu", "sign", "not", "add", "sub", "mul", "div", "pow", "min", "max", "mod",
    "eq", "lt", "gt", "le", "ge", "and", "or", "xor", "where", "clip", "cast", "prelu",
})

NATIVE_OP_TABLE = "cuda_kernels/kernels/pointwise_ops.inc"
"""The native opcode table generated from OPS and INT_OPS (:func:`native_op_table`); pointwise.h's ``enum Op`` and
kernels_pointwise.cpp's arity table are built from it, so an op is declared here only."""
_NATIVE_SPELLING = {"isnan": "IsNan", "isinf": "IsInf"}

COMPUTE_TYPES = ("float", "int64")
IO_DTYPES = frozenset({FLOAT, FLOAT16, BFLOAT16, INT32, INT64, BOOL})


@dataclass
class Program:
    """A pointwise program (see the module docstring)."""

    n_inputs: int
    compute: str = "float"
    code: list[list] = field(default_factory=list)
    outputs: list[tuple[int, int]] = field(default_factory=list)  # (register, onnx dtype)

    def to_json(self) -> str:
        return json.dumps({"compute": self.compute, "code": self.code, "outputs": [list(o) for o in self.outputs]},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, n_inputs: int) -> Program:
        d = json.loads(text)
        p = cls(n_inputs, d["compute"], [list(i) for i in d["code"]], [(int(r), int(t)) for r, t in d["outputs"]])
        p.validate()
        return p

    @property
    def n_regs(self) -> int:
        regs = [self.n_inputs - 1] + [ins[1] for ins in self.code] + [r for r, _ in self.outputs]
        return max(regs) + 1

    def validate(self) -> None:
        """Raise ValueError naming the first problem (unknown op, bad arity, register out of range, limits)."""
        if self.compute not in COMPUTE_TYPES:
            raise ValueError(f"pointwise program: compute type {self.compute!r} is not one of {COMPUTE_TYPES}")
        if not 0 < self.n_inputs <= MAX_INPUTS:
            raise ValueError(f"pointwise program: {self.n_inputs} inputs (limit {MAX_INPUTS})")
        if not 0 < len(self.outputs) <= MAX_OUTPUTS:
            raise ValueError(f"pointwise program: {len(self.outputs)} outputs (limit 1..{MAX_OUTPUTS})")
        if len(self.code) > MAX_CODE:
            raise ValueError(f"pointwise program: {len(self.code)} instructions (limit {MAX_CODE})")
        defined = set(range(self.n_inputs))
        for k, ins in enumerate(self.code):
            op = ins[0]
            if op not in OPS:
                raise ValueError(f"pointwise program: instruction {k} has unknown op {op!r}")
            n_src, n_imm = OPS[op]
            if len(ins) != 2 + n_src + n_imm:
                raise ValueError(f"pointwise program: instruction {k} ({op}) needs {n_src} sources and "
                                 f"{n_imm} immediates, got {ins[2:]}")
            if self.compute == "int64" and op not in INT_OPS:
                raise ValueError(f"pointwise program: op {op!r} (instruction {k}) needs float compute")
            for r in ins[2:2 + n_src]:
                if r not in defined:
                    raise ValueError(f"pointwise program: instruction {k} ({op}) reads register {r} before it is set")
            if not 0 <= ins[1] < MAX_REGS:
                raise ValueError(f"pointwise program: instruction {k} writes register {ins[1]} (limit {MAX_REGS})")
            defined.add(ins[1])
        for r, t in self.outputs:
            if r not in defined:
                raise ValueError(f"pointwise program: output register {r} is never set")
            if t not in IO_DTYPES:
                raise ValueError(f"pointwise program: output dtype {t} is not supported")


# --------------------------------------------------------------------------------------- reference --

def _t(x: np.ndarray) -> np.ndarray:
    return x != 0


def _b(x: np.ndarray, ct: type) -> np.ndarray:
    return x.astype(ct)


def _cast_to(x: np.ndarray, to: int, ct: type) -> np.ndarray:
    if to == BOOL:
        return (x != 0).astype(ct)
    if to in (FLOAT16, BFLOAT16):
        return x.astype(np_dtype(to)).astype(ct)
    if to in (INT32, INT64):
        if _is_float(ct):
            with np.errstate(invalid="ignore"):
                return np.trunc(x).astype(np_dtype(to)).astype(ct)
        return x.astype(np_dtype(to)).astype(ct)
    return x.astype(ct)


def _int_pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer power (squaring, wrapping on overflow like int64 arithmetic); a negative exponent gives the
    truncated real result: 0, except 1 for base 1 and +-1 for base -1."""
    a, b = np.broadcast_arrays(np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64))
    result = np.ones(a.shape, np.int64)
    base = a.copy()
    e = np.where(b < 0, 0, b)
    with np.errstate(over="ignore"):
        while np.any(e > 0):
            result = np.where((e & 1) == 1, result * base, result)
            e = e >> 1
            base = np.where(e > 0, base * base, base)
    negative = np.where(a == 1, 1, np.where(a == -1, np.where((b & 1) == 1, -1, 1), 0))
    return np.where(b < 0, negative, result)


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


def _mod(a: np.ndarray, b: np.ndarray, fmod: float, ct: type) -> np.ndarray:
    if fmod:
        return np.fmod(a, b).astype(ct)
    return np.mod(a, b).astype(ct)


def _minmax(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    return np.minimum(a, b) if op == "min" else np.maximum(a, b)


def _is_float(ct: type) -> bool:
    return bool(np.issubdtype(ct, np.floating))


def run(program: Program, inputs: list[np.ndarray], compute_dtype: type | None = None) -> list[np.ndarray]:
    """Evaluate the program with numpy (the reference semantics).

    `compute_dtype` (np.float64 or np.int64) overrides the program's compute type; the op references use it to
    evaluate the same program on dtypes the GPU path does not take (float64 data, 8/16-bit integers), with output
    dtypes given as any ONNX element type."""
    ct = compute_dtype or (np.float32 if program.compute == "float" else np.int64)
    shape = np.broadcast_shapes(*[np.shape(x) for x in inputs])
    regs: dict[int, np.ndarray] = {}
    for i, x in enumerate(inputs):
        regs[i] = np.asarray(x).astype(ct)
    with np.errstate(all="ignore"):
        for ins in program.code:
            op, dst = ins[0], ins[1]
            n_src, _ = OPS[op]
            s = [regs[r] for r in ins[2:2 + n_src]]
            imm = ins[2 + n_src:]
            regs[dst] = _apply(op, s, imm, ct)
    outs = []
    for r, t in program.outputs:
        v = np.broadcast_to(regs[r], shape)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf -> int is unspecified (as in C); f16 -> inf
            if t == BOOL:
                y = v != 0
            elif np_dtype(t).kind in "iu" and _is_float(ct):
                y = np.trunc(v).astype(np_dtype(t))
            else:
                y = v.astype(np_dtype(t))
        outs.append(np.array(y, order="C"))  # a fresh contiguous array; 0-d stays 0-d
    return outs


def _imm(value: float, ct: type) -> np.generic:
    """An immediate in the compute type; in int64 compute it saturates to the int64 range (so Clip's
    'no bound' of +-9.2e18 or +-inf works) and NaN becomes 0."""
    if _is_float(ct):
        return ct(value)
    v = float(value)
    if v != v:
        return np.int64(0)
    if v >= 2.0 ** 63:
        return np.int64(np.iinfo(np.int64).max)
    if v <= -(2.0 ** 63):
        return np.int64(np.iinfo(np.int64).min)
    return np.int64(int(v))


def _apply(op: str, s: list[np.ndarray], imm: list, ct: type) -> np.ndarray:  # noqa: C901
    f = _is_float(ct)
    one, zero = ct(1), ct(0)
    if op == "mov":
        return s[0]
    if op == "const":
        return np.asarray(_imm(imm[0], ct))
    if op == "neg":
        return -s[0]
    if op == "abs":
        return np.abs(s[0])
    if op == "relu":
        return np.maximum(s[0], zero)
    if op == "sign":
        return np.sign(s[0]).astype(ct)
    if op == "not":
        return _b(~_t(s[0]), ct)
    if op in ("add", "sub", "mul"):
        return {"add": np.add, "sub": np.subtract, "mul": np.multiply}[op](s[0], s[1]).astype(ct)
    if op == "div":
        return (np.divide(s[0], s[1]) if f else _int_div(s[0], s[1])).astype(ct)
    if op == "pow":
        if f:
            return np.power(s[0], s[1]).astype(ct)
        return _int_pow(s[0], s[1]).astype(ct)
    if op in ("min", "max"):
        return _minmax(s[0], s[1], op).astype(ct)
    if op == "mod":
        return _mod(s[0], s[1], imm[0], ct)
    if op in ("eq", "lt", "gt", "le", "ge"):
        fn = {"eq": np.equal, "lt": np.less, "gt": np.greater, "le": np.less_equal, "ge": np.greater_equal}[op]
        return _b(fn(s[0], s[1]), ct)
    if op in ("and", "or", "xor"):
        fn = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}[op]
        return _b(fn(_t(s[0]), _t(s[1])), ct)
    if op == "prelu":
        return np.where(s[0] < 0, s[1] * s[0], s[0]).astype(ct)
    if op == "where":
        return np.where(_t(s[0]), s[1], s[2]).astype(ct)
    if op == "clip":
        return np.minimum(np.maximum(s[0], _imm(imm[0], ct)), _imm(imm[1], ct)).astype(ct)
    if op == "cast":
        return _cast_to(s[0], int(imm[0]), ct)
    # float-only ops
    x = s[0]
    if op == "sigmoid":
        return (one / (one + np.exp(-x))).astype(ct)
    if op in ("tanh", "exp", "log", "sqrt", "floor", "ceil", "sin", "cos"):
        return getattr(np, op)(x).astype(ct)
    if op == "erf":
        return _erf(x).astype(ct)
    if op == "reciprocal":
        return (one / x).astype(ct)
    if op == "round":
        return np.round(x).astype(ct)
    if op == "isnan":
        return _b(np.isnan(x), ct)
    if op == "isinf":
        return _b(np.isinf(x), ct)
    if op == "gelu":
        return (ct(0.5) * x * (one + _erf(x / ct(np.sqrt(2.0))))).astype(ct)
    if op == "gelu_tanh":
        c = ct(np.sqrt(2.0 / np.pi))
        return (ct(0.5) * x * (one + np.tanh(c * (x + ct(0.044715) * x * x * x)))).astype(ct)
    if op == "softplus":
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))).astype(ct)
    if op == "softsign":
        return (x / (one + np.abs(x))).astype(ct)
    if op == "hard_swish":
        return (x * np.clip(x / ct(6) + ct(0.5), 0, 1)).astype(ct)
    a = ct(imm[0]) if imm else None
    if op == "leaky_relu":
        return np.where(x < 0, a * x, x).astype(ct)
    if op == "elu":
        return np.where(x < 0, a * (np.exp(x) - one), x).astype(ct)
    if op == "thresholded_relu":
        return np.where(x > a, x, zero).astype(ct)
    if op == "celu":
        return (np.maximum(zero, x) + np.minimum(zero, a * (np.exp(x / a) - one))).astype(ct)
    if op == "hard_sigmoid":
        return np.clip(a * x + ct(imm[1]), 0, 1).astype(ct)
    if op == "selu":
        g = ct(imm[1])
        return (g * np.where(x <= 0, a * (np.exp(x) - one), x)).astype(ct)
    raise ValueError(f"pointwise program: unknown op {op!r}")


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorized erf in float64: Taylor series for |x| < 0.5, Numerical Recipes' Chebyshev erfc (fractional
    error below 1.2e-7) beyond. Accurate well past float32 resolution, without scipy."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    small = ax < 0.5
    out = np.empty_like(x)
    xs = x[small]
    if xs.size:
        x2 = xs * xs
        term = xs.copy()
        acc = xs.copy()
        for n in range(1, 14):
            term = term * (-x2) / n
            acc = acc + term / (2 * n + 1)
        out[small] = acc * (2.0 / np.sqrt(np.pi))
    xl = x[~small]
    if xl.size:
        z = np.abs(xl)
        t = 1.0 / (1.0 + 0.5 * z)
        poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
            -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
                -0.82215223 + t * 0.17087277)))))))))
        erfc = t * np.exp(poly)
        out[~small] = np.sign(xl) * (1.0 - erfc)
    return out


_erf = erf


# ------------------------------------------------------------------------------------ native table --

def native_op_table() -> str:
    """The text of :data:`NATIVE_OP_TABLE`: one X-macro row per opcode, in OPCODES order."""
    lines = [f"// Generated from ep_trtpy/ops/pointwise_program.py (OPS, INT_OPS) by\n"
             f"//     python -m ep_trtpy.ops.pointwise_program --native > {NATIVE_OP_TABLE}\n"
             "// Do not edit: a test fails when this file differs from what OPS and INT_OPS generate.\n"
             "// TP_PW_OP(enumerator, register sources, allowed in int64 compute)\n"]
    for name in OPCODES:
        cpp = _NATIVE_SPELLING.get(name) or "".join(w.capitalize() for w in name.split("_"))
        lines.append(f"TP_PW_OP(k{cpp}, {OPS[name][0]}, {'true' if name in INT_OPS else 'false'})\n")
    return "".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--native"]:
        sys.exit("usage: python -m ep_trtpy.ops.pointwise_program --native > " + NATIVE_OP_TABLE)
    sys.stdout.write(native_op_table())
