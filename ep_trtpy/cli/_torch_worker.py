"""The ONNX interpreter of the PyTorch benchmark rows: for generated architectures and ONNX files (which have no
torch module of their own), ``_torch_bench_worker.py`` times PyTorch eager and ``torch.compile`` on
:func:`build_module`'s module. Loaded by path inside that worker's process, never by the ep_trtpy package (which
does not depend on torch).

The ONNX model is executed by a small interpreter written with torch operations (:class:`OnnxModule`), so PyTorch
runs the very same graph and weights as the ONNX runners: eagerly op by op, or traced and compiled by
``torch.compile`` (the node list is static Python data, so dynamo unrolls it into one graph). Shape arithmetic
(Shape / Gather / Unsqueeze / Concat feeding Reshape, Expand, Slice) is carried out on Python ints, as a PyTorch
model computes it. Only the ops of the generated architectures and common CNN / transformer graphs are covered;
any other op is reported by name.
"""

from __future__ import annotations

import math
from typing import Any

try:  # the package does not depend on PyTorch: without it, this module still imports (for its op table)
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = F = None

_Module: Any = torch.nn.Module if torch is not None else object

SMALL = 64
"""int64 initializers up to this many elements are also kept as Python ints (shapes, axes, split sizes)."""

DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 9: "bool", 2: "uint8", 3: "int8"}
"""torch dtype names by ONNX element type."""


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class OnnxModule(_Module):
    """An ``nn.Module`` whose forward interprets an ONNX model with the torch ops of :data:`OPS`."""

    def __init__(self, model: Any, device: Any, half: bool, half_dtype: Any = None) -> None:
        from onnx import numpy_helper

        super().__init__()
        self.device, self.half_run, self.low = device, half, half_dtype or torch.float16
        g = model.graph
        self.input_names = [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
        self.output_names = [o.name for o in g.output]
        self.attr_of: dict[str, str] = {}
        self.ints: dict[str, Any] = {}
        self.floats: dict[str, float] = {}
        self.float_lists: dict[str, list[float]] = {}
        for k, t in enumerate(g.initializer):
            self._add_const(f"c{k}", t.name, numpy_helper.to_array(t))
        self.nodes = []
        for k, n in enumerate(g.node):
            attrs = _attrs(n)
            if n.op_type == "Constant":
                if "value" not in attrs:
                    raise ValueError(f"Constant node '{n.name}': only tensor values are supported")
                self._add_const(f"k{k}", n.output[0], numpy_helper.to_array(attrs["value"]))
                continue
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs, n.name))

    def _add_const(self, attr: str, name: str, arr: Any) -> None:
        import numpy as np

        t = torch.from_numpy(np.array(arr, copy=True))
        if self.half_run and t.dtype == torch.float32:
            t = t.to(self.low)
        self.register_buffer(attr, t.to(self.device), persistent=False)
        self.attr_of[name] = attr
        if arr.dtype.kind in "iu" and arr.size <= SMALL:
            self.ints[name] = int(arr) if arr.ndim == 0 else [int(v) for v in arr.ravel()]
        if arr.dtype.kind == "f" and arr.size <= SMALL:
            self.float_lists[name] = [float(v) for v in arr.ravel()]
            if arr.size == 1:
                self.floats[name] = float(arr.ravel()[0])

    def forward(self, *inputs: Any) -> tuple:
        v = Values(self, dict(zip(self.input_names, inputs)))
        for op, ins, outs, a, node_name in self.nodes:
            fn = OPS.get(op)
            if fn is None:
                raise NotImplementedError(f"node '{node_name}': op {op} is not supported by the PyTorch runner")
            res = fn(ins, a, v)
            if len(outs) == 1:
                v.env[outs[0]] = res
            else:
                for o, r in zip(outs, res):
                    if o:
                        v.env[o] = r
        return tuple(v.env[o] if o in v.env else v.t(o) for o in self.output_names)


class Values:
    """How an op reads its inputs: as tensors, as Python ints (shape arithmetic) or as constant scalars."""

    def __init__(self, module: OnnxModule, env: dict[str, Any]) -> None:
        self.module, self.env = module, env
        self.device, self.half_run, self.low = module.device, module.half_run, module.low

    def t(self, name: str) -> Any:
        """A tensor (Python shape values become tensors)."""
        if name in self.env:
            v = self.env[name]
            return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.int64, device=self.device)
        return getattr(self.module, self.module.attr_of[name])

    def ints(self, name: str) -> Any:
        """Python ints (a shape, axes, sizes); computed shape values stay Python ints."""
        if name in self.env:
            v = self.env[name]
            if isinstance(v, torch.Tensor):
                return v.tolist()
            return v
        return self.module.ints[name]

    def shapeish(self, name: str) -> bool:
        return (name in self.env and not isinstance(self.env[name], torch.Tensor)) or (
            name not in self.env and name in self.module.ints)

    def scalar(self, name: str) -> Any:
        """A Python float for constant scalars (so torch.compile sees a constant), else a 0-d tensor."""
        if name in self.module.floats and name not in self.env:
            return self.module.floats[name]
        if name in self.module.float_lists and name not in self.env:  # Resize scales and the like
            return self.module.float_lists[name]
        return self.t(name)

    def dtype(self, elem: int) -> Any:
        """The torch dtype of ONNX element type `elem` (float32 runs as the half dtype in a half run)."""
        dt = getattr(torch, DTYPES[elem])
        return self.low if self.half_run and dt == torch.float32 else dt


def build_module(model: Any, device: Any, half: bool, half_dtype: Any = None) -> Any:
    """An ``nn.Module`` whose forward interprets ``model`` with torch ops (see the module docstring); with ``half``
    float32 weights, constants and casts become ``half_dtype`` (default torch.float16; torch.bfloat16 for BF16)."""
    return OnnxModule(model, device, half, half_dtype)


# ------------------------------------------------------------------------------------------------ ops --
# Each op is fn(ins, a, v): input names, attributes, and the Values it reads them through.

def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else x


def norm_axes(axes: Any, rank: int) -> list[int]:
    return [int(x) % rank for x in axes]


def pads_of(a: dict, nd: int) -> tuple[list[int], list[int]]:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise NotImplementedError(f"auto_pad={a['auto_pad']!r} is not supported by the PyTorch runner")
    p = list(a.get("pads", [0] * (2 * nd)))
    return p[:nd], p[nd:]


def conv(ins: list, a: dict, v: Values) -> Any:
    x, w = v.t(ins[0]), v.t(ins[1])
    b = v.t(ins[2]) if len(ins) > 2 and ins[2] else None
    nd = w.dim() - 2
    begin, end = pads_of(a, nd)
    if begin != end:
        x = F.pad(x, [p for i in reversed(range(nd)) for p in (begin[i], end[i])])
        begin = [0] * nd
    f = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return f(x, w, b, stride=list(a.get("strides", [1] * nd)), padding=begin,
             dilation=list(a.get("dilations", [1] * nd)), groups=int(a.get("group", 1)))


def maxpool(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    k = list(a["kernel_shape"])
    nd = len(k)
    begin, end = pads_of(a, nd)
    if begin != end:
        x = F.pad(x, [p for i in reversed(range(nd)) for p in (begin[i], end[i])], value=-math.inf)
        begin = [0] * nd
    f = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
    return f(x, k, stride=list(a.get("strides", [1] * nd)), padding=begin,
             dilation=list(a.get("dilations", [1] * nd)), ceil_mode=bool(a.get("ceil_mode", 0)))


def gemm(ins: list, a: dict, v: Values) -> Any:
    A, B = v.t(ins[0]), v.t(ins[1])
    if a.get("transA", 0):
        A = A.t()
    if a.get("transB", 0):
        B = B.t()
    y = torch.matmul(A, B)
    if a.get("alpha", 1.0) != 1.0:
        y = y * a["alpha"]
    if len(ins) > 2 and ins[2]:
        c = v.t(ins[2])
        y = y + (c * a["beta"] if a.get("beta", 1.0) != 1.0 else c)
    return y


def div(ins: list, a: dict, v: Values) -> Any:
    x, y = v.t(ins[0]), v.t(ins[1])
    if x.dtype.is_floating_point:
        return x / y
    return torch.div(x, y, rounding_mode="trunc")


def reshape(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    shape = list(v.ints(ins[1]))
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


def shape(ins: list, a: dict, v: Values) -> Any:
    dims = list(v.t(ins[0]).shape)
    return dims[a.get("start", 0):a.get("end", len(dims))] if ("start" in a or "end" in a) else dims


def gather(ins: list, a: dict, v: Values) -> Any:
    axis = int(a.get("axis", 0))
    if v.shapeish(ins[0]) and v.shapeish(ins[1]):
        data, idx = v.ints(ins[0]), v.ints(ins[1])
        return data[idx] if isinstance(idx, int) else [data[i] for i in idx]
    x = v.t(ins[0])
    idx = v.t(ins[1])
    axis %= x.dim()
    if idx.dim() == 0:
        return x.select(axis, int(idx.item()) if not v.shapeish(ins[1]) else v.ints(ins[1]))
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = x.index_select(axis, idx.reshape(-1))
    return out.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))


def unsqueeze(ins: list, a: dict, v: Values) -> Any:
    axes = list(a["axes"]) if "axes" in a else v.ints(ins[1])
    axes = [axes] if isinstance(axes, int) else axes
    if v.shapeish(ins[0]):
        s = v.ints(ins[0])
        if isinstance(s, int) and axes in ([0], [-1]):
            return [s]
    x = v.t(ins[0])
    rank = x.dim() + len(axes)
    for ax in sorted(norm_axes(axes, rank)):
        x = x.unsqueeze(ax)
    return x


def concat(ins: list, a: dict, v: Values) -> Any:
    if all(v.shapeish(n) for n in ins):
        out: list[int] = []
        for n in ins:
            s = v.ints(n)
            out.extend([s] if isinstance(s, int) else s)
        return out
    return torch.cat([v.t(n) for n in ins], dim=int(a["axis"]))


def slice_(ins: list, a: dict, v: Values) -> Any:
    starts, ends = v.ints(ins[1]), v.ints(ins[2])
    axes = v.ints(ins[3]) if len(ins) > 3 and ins[3] else list(range(len(starts)))
    steps = v.ints(ins[4]) if len(ins) > 4 and ins[4] else [1] * len(starts)
    if v.shapeish(ins[0]):
        return v.ints(ins[0])[starts[0]:ends[0]:steps[0]]
    x = v.t(ins[0])
    index = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st < 0:
            raise NotImplementedError("Slice with a negative step is not supported by the PyTorch runner")
        index[ax % x.dim()] = slice(s, e, st)
    return x[tuple(index)]


def expand(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    return x.expand(list(torch.broadcast_shapes(tuple(x.shape), tuple(v.ints(ins[1])))))


def cast(ins: list, a: dict, v: Values) -> Any:
    if v.shapeish(ins[0]) and a["to"] in (6, 7):
        return v.ints(ins[0])
    return v.t(ins[0]).to(v.dtype(int(a["to"])))


def layer_norm(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    axis = int(a.get("axis", -1)) % x.dim()
    w = v.t(ins[1])
    b = v.t(ins[2]) if len(ins) > 2 and ins[2] else None
    return F.layer_norm(x, list(x.shape[axis:]), w, b, float(a.get("epsilon", 1e-5)))


def reduce_mean(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    axes = list(a["axes"]) if "axes" in a else (v.ints(ins[1]) if len(ins) > 1 and ins[1] else None)
    keep = bool(a.get("keepdims", 1))
    if axes is None:
        return x.mean(dim=list(range(x.dim())), keepdim=keep)
    return x.mean(dim=norm_axes(axes, x.dim()), keepdim=keep)


def split(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    axis = int(a.get("axis", 0)) % x.dim()
    if len(ins) > 1 and ins[1]:
        sizes = v.ints(ins[1])
    elif "split" in a:
        sizes = list(a["split"])
    else:
        n = int(a["num_outputs"])
        sizes = [math.ceil(x.shape[axis] / n)] * n
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return torch.split(x, list(sizes), dim=axis)


def resize(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    mode = _text(a.get("mode", b"nearest"))
    ctm = _text(a.get("coordinate_transformation_mode", b"half_pixel"))
    if len(ins) > 3 and ins[3]:
        kw: dict[str, Any] = {"size": v.ints(ins[3])[2:]}
    else:
        scales = v.scalar(ins[2])
        if not isinstance(scales, list):
            raise NotImplementedError("Resize with runtime scales is not supported by the PyTorch runner")
        if scales[:2] != [1.0, 1.0]:
            raise NotImplementedError("Resize of the batch or channel axis is not supported by the PyTorch runner")
        kw = {"scale_factor": scales[2:]}
    if mode == "nearest" and ctm == "asymmetric" and _text(a.get("nearest_mode", b"round_prefer_floor")) == "floor":
        return F.interpolate(x, mode="nearest", **kw)
    if mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        nd = x.dim() - 2
        return F.interpolate(x, mode={1: "linear", 2: "bilinear", 3: "trilinear"}[nd],
                             align_corners=ctm == "align_corners", **kw)
    raise NotImplementedError(f"Resize mode={mode} coordinate_transformation_mode={ctm} is not supported by the "
                              f"PyTorch runner")


def clip(ins: list, a: dict, v: Values) -> Any:
    lo = v.scalar(ins[1]) if len(ins) > 1 and ins[1] else None
    hi = v.scalar(ins[2]) if len(ins) > 2 and ins[2] else None
    return torch.clamp(v.t(ins[0]), lo, hi)


def flatten(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    axis = int(a.get("axis", 1))
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def transpose(ins: list, a: dict, v: Values) -> Any:
    x = v.t(ins[0])
    return x.permute(list(a["perm"]) if "perm" in a else list(reversed(range(x.dim()))))


def unary(name: str) -> Any:
    """The op torch.<name>(x)."""
    return lambda ins, a, v: getattr(torch, name)(v.t(ins[0]))


def binary(name: str) -> Any:
    """The op torch.<name>(x, y)."""
    return lambda ins, a, v: getattr(torch, name)(v.t(ins[0]), v.t(ins[1]))


OPS: dict[str, Any] = {
    "Conv": conv, "MaxPool": maxpool, "Gemm": gemm, "Reshape": reshape, "Shape": shape, "Gather": gather,
    "Unsqueeze": unsqueeze, "Concat": concat, "Slice": slice_, "Expand": expand, "Cast": cast,
    "LayerNormalization": layer_norm, "ReduceMean": reduce_mean, "Split": split, "Resize": resize, "Clip": clip,
    "Flatten": flatten, "Transpose": transpose, "Div": div,
    "Identity": lambda ins, a, v: v.t(ins[0]),
    "Dropout": lambda ins, a, v: v.t(ins[0]),
    "Pow": lambda ins, a, v: torch.pow(v.t(ins[0]), v.scalar(ins[1])),
    "Einsum": lambda ins, a, v: torch.einsum(_text(a["equation"]), *[v.t(n) for n in ins]),
    "Softmax": lambda ins, a, v: torch.softmax(v.t(ins[0]), dim=int(a.get("axis", -1))),
    "Gelu": lambda ins, a, v: F.gelu(v.t(ins[0]), approximate=_text(a.get("approximate", "none"))),
    "BatchNormalization": lambda ins, a, v: F.batch_norm(v.t(ins[0]), v.t(ins[3]), v.t(ins[4]), v.t(ins[1]),
                                                         v.t(ins[2]), False, 0.0, float(a.get("epsilon", 1e-5))),
    "GlobalAveragePool": lambda ins, a, v: v.t(ins[0]).mean(dim=list(range(2, v.t(ins[0]).dim())), keepdim=True),
    "Add": binary("add"), "Sub": binary("sub"), "Mul": binary("mul"), "MatMul": binary("matmul"),
    "Relu": unary("relu"), "Sigmoid": unary("sigmoid"), "Erf": unary("erf"), "Sqrt": unary("sqrt"),
    "Tanh": unary("tanh"), "Exp": unary("exp"), "Neg": unary("neg"),
}
"""The ops the runner interprets, by ONNX op type."""
