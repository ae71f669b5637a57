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

SMALL = 64
"""int64 initializers up to this many elements are also kept as Python ints (shapes, axes, split sizes)."""


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def build_module(model: Any, device: Any, half: bool, half_dtype: Any = None) -> Any:
    """An ``nn.Module`` whose forward interprets ``model`` with torch ops (see the module docstring); with ``half``
    float32 weights, constants and casts become ``half_dtype`` (default torch.float16; torch.bfloat16 for BF16)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper

    low = half_dtype or torch.float16
    dtypes = {1: torch.float32, 10: torch.float16, 11: torch.float64, 7: torch.int64, 6: torch.int32,
              9: torch.bool, 2: torch.uint8, 3: torch.int8}

    def fdtype(elem: int) -> Any:
        dt = dtypes[elem]
        return low if half and dt == torch.float32 else dt

    class OnnxModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
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
            t = torch.from_numpy(np.array(arr, copy=True))
            if half and t.dtype == torch.float32:
                t = t.to(low)
            self.register_buffer(attr, t.to(device), persistent=False)
            self.attr_of[name] = attr
            if arr.dtype.kind in "iu" and arr.size <= SMALL:
                self.ints[name] = int(arr) if arr.ndim == 0 else [int(v) for v in arr.ravel()]
            if arr.dtype.kind == "f" and arr.size <= SMALL:
                self.float_lists[name] = [float(v) for v in arr.ravel()]
                if arr.size == 1:
                    self.floats[name] = float(arr.ravel()[0])

        def forward(self, *inputs: Any) -> tuple:
            env: dict[str, Any] = dict(zip(self.input_names, inputs))

            def t(name: str) -> Any:
                """A tensor (Python shape values become tensors)."""
                if name in env:
                    v = env[name]
                    return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.int64, device=device)
                return getattr(self, self.attr_of[name])

            def ints(name: str) -> Any:
                """Python ints (a shape, axes, sizes); computed shape values stay Python ints."""
                if name in env:
                    v = env[name]
                    if isinstance(v, torch.Tensor):
                        return v.tolist()
                    return v
                return self.ints[name]

            def shapeish(name: str) -> bool:
                return (name in env and not isinstance(env[name], torch.Tensor)) or (name not in env
                                                                                      and name in self.ints)

            def scalar(name: str) -> Any:
                """A Python float for constant scalars (so torch.compile sees a constant), else a 0-d tensor."""
                if name in self.floats and name not in env:
                    return self.floats[name]
                if name in self.float_lists and name not in env:  # Resize scales and the like
                    return self.float_lists[name]
                return t(name)

            for op, ins, outs, a, node_name in self.nodes:
                fn = _OPS.get(op)
                if fn is None:
                    raise NotImplementedError(f"node '{node_name}': op {op} is not supported by the PyTorch runner")
                res = fn(ins, a, t, ints, shapeish, scalar)
                if len(outs) == 1:
                    env[outs[0]] = res
                else:
                    for o, r in zip(outs, res):
                        if o:
                            env[o] = r
            return tuple(env[o] if o in env else t(o) for o in self.output_names)

    def norm_axes(axes: Any, rank: int) -> list[int]:
        return [int(x) % rank for x in axes]

    def pads_of(a: dict, nd: int) -> tuple[list[int], list[int]]:
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise NotImplementedError(f"auto_pad={a['auto_pad']!r} is not supported by the PyTorch runner")
        p = list(a.get("pads", [0] * (2 * nd)))
        return p[:nd], p[nd:]

    def conv(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, scalar: Any) -> Any:
        x, w = t(ins[0]), t(ins[1])
        b = t(ins[2]) if len(ins) > 2 and ins[2] else None
        nd = w.dim() - 2
        begin, end = pads_of(a, nd)
        if begin != end:
            x = F.pad(x, [v for i in reversed(range(nd)) for v in (begin[i], end[i])])
            begin = [0] * nd
        f = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
        return f(x, w, b, stride=list(a.get("strides", [1] * nd)), padding=begin,
                 dilation=list(a.get("dilations", [1] * nd)), groups=int(a.get("group", 1)))

    def maxpool(ins: list, a: dict, t: Any, *_: Any) -> Any:
        x = t(ins[0])
        k = list(a["kernel_shape"])
        nd = len(k)
        begin, end = pads_of(a, nd)
        if begin != end:
            x = F.pad(x, [v for i in reversed(range(nd)) for v in (begin[i], end[i])], value=-math.inf)
            begin = [0] * nd
        f = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
        return f(x, k, stride=list(a.get("strides", [1] * nd)), padding=begin,
                 dilation=list(a.get("dilations", [1] * nd)), ceil_mode=bool(a.get("ceil_mode", 0)))

    def gemm(ins: list, a: dict, t: Any, *_: Any) -> Any:
        A, B = t(ins[0]), t(ins[1])
        if a.get("transA", 0):
            A = A.t()
        if a.get("transB", 0):
            B = B.t()
        y = torch.matmul(A, B)
        if a.get("alpha", 1.0) != 1.0:
            y = y * a["alpha"]
        if len(ins) > 2 and ins[2]:
            c = t(ins[2])
            y = y + (c * a["beta"] if a.get("beta", 1.0) != 1.0 else c)
        return y

    def binary(f: Any) -> Any:
        def op(ins: list, a: dict, t: Any, *_: Any) -> Any:
            return f(t(ins[0]), t(ins[1]))

        return op

    def div(ins: list, a: dict, t: Any, *_: Any) -> Any:
        x, y = t(ins[0]), t(ins[1])
        if x.dtype.is_floating_point:
            return x / y
        return torch.div(x, y, rounding_mode="trunc")

    def reshape(ins: list, a: dict, t: Any, ints: Any, *_: Any) -> Any:
        x = t(ins[0])
        shape = list(ints(ins[1]))
        if not a.get("allowzero", 0):
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)

    def shape(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, *_: Any) -> Any:
        x = t(ins[0])
        dims = list(x.shape)
        return dims[a.get("start", 0):a.get("end", len(dims))] if ("start" in a or "end" in a) else dims

    def gather(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, *_: Any) -> Any:
        axis = int(a.get("axis", 0))
        if shapeish(ins[0]) and shapeish(ins[1]):
            data, idx = ints(ins[0]), ints(ins[1])
            return data[idx] if isinstance(idx, int) else [data[i] for i in idx]
        x = t(ins[0])
        idx = t(ins[1])
        axis %= x.dim()
        if idx.dim() == 0:
            return x.select(axis, int(idx.item()) if not shapeish(ins[1]) else ints(ins[1]))
        idx = torch.where(idx < 0, idx + x.shape[axis], idx)
        out = x.index_select(axis, idx.reshape(-1))
        return out.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))

    def unsqueeze(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, *_: Any) -> Any:
        axes = list(a["axes"]) if "axes" in a else ints(ins[1])
        axes = [axes] if isinstance(axes, int) else axes
        if shapeish(ins[0]):
            v = ints(ins[0])
            if isinstance(v, int) and axes in ([0], [-1]):
                return [v]
        x = t(ins[0])
        rank = x.dim() + len(axes)
        for ax in sorted(norm_axes(axes, rank)):
            x = x.unsqueeze(ax)
        return x

    def concat(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, *_: Any) -> Any:
        if all(shapeish(n) for n in ins):
            out: list[int] = []
            for n in ins:
                v = ints(n)
                out.extend([v] if isinstance(v, int) else v)
            return out
        return torch.cat([t(n) for n in ins], dim=int(a["axis"]))

    def slice_(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, *_: Any) -> Any:
        starts, ends = ints(ins[1]), ints(ins[2])
        axes = ints(ins[3]) if len(ins) > 3 and ins[3] else list(range(len(starts)))
        steps = ints(ins[4]) if len(ins) > 4 and ins[4] else [1] * len(starts)
        if shapeish(ins[0]):
            v = ints(ins[0])
            return v[starts[0]:ends[0]:steps[0]]
        x = t(ins[0])
        index = [slice(None)] * x.dim()
        for s, e, ax, st in zip(starts, ends, axes, steps):
            if st < 0:
                raise NotImplementedError("Slice with a negative step is not supported by the PyTorch runner")
            index[ax % x.dim()] = slice(s, e, st)
        return x[tuple(index)]

    def expand(ins: list, a: dict, t: Any, ints: Any, *_: Any) -> Any:
        x = t(ins[0])
        return x.expand(list(torch.broadcast_shapes(tuple(x.shape), tuple(ints(ins[1])))))

    def cast(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, *_: Any) -> Any:
        if shapeish(ins[0]) and a["to"] in (6, 7):
            return ints(ins[0])
        return t(ins[0]).to(fdtype(int(a["to"])))

    def layer_norm(ins: list, a: dict, t: Any, *_: Any) -> Any:
        x = t(ins[0])
        axis = int(a.get("axis", -1)) % x.dim()
        w = t(ins[1])
        b = t(ins[2]) if len(ins) > 2 and ins[2] else None
        return F.layer_norm(x, list(x.shape[axis:]), w, b, float(a.get("epsilon", 1e-5)))

    def reduce_mean(ins: list, a: dict, t: Any, ints: Any, *_: Any) -> Any:
        x = t(ins[0])
        axes = list(a["axes"]) if "axes" in a else (ints(ins[1]) if len(ins) > 1 and ins[1] else None)
        keep = bool(a.get("keepdims", 1))
        if axes is None:
            return x.mean(dim=list(range(x.dim())), keepdim=keep)
        return x.mean(dim=norm_axes(axes, x.dim()), keepdim=keep)

    def split(ins: list, a: dict, t: Any, ints: Any, *_: Any) -> Any:
        x = t(ins[0])
        axis = int(a.get("axis", 0)) % x.dim()
        if len(ins) > 1 and ins[1]:
            sizes = ints(ins[1])
        elif "split" in a:
            sizes = list(a["split"])
        else:
            n = int(a["num_outputs"])
            sizes = [math.ceil(x.shape[axis] / n)] * n
            sizes[-1] = x.shape[axis] - sum(sizes[:-1])
        return torch.split(x, list(sizes), dim=axis)

    def resize(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, scalar: Any) -> Any:
        x = t(ins[0])
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        ctm = a.get("coordinate_transformation_mode", b"half_pixel")
        ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
        if len(ins) > 3 and ins[3]:
            size = ints(ins[3])[2:]
            kw: dict[str, Any] = {"size": size}
        else:
            scales = scalar(ins[2])
            if not isinstance(scales, list):
                raise NotImplementedError("Resize with runtime scales is not supported by the PyTorch runner")
            if scales[:2] != [1.0, 1.0]:
                raise NotImplementedError("Resize of the batch or channel axis is not supported by the PyTorch runner")
            kw = {"scale_factor": scales[2:]}
        if mode == "nearest" and ctm == "asymmetric" and a.get("nearest_mode", b"round_prefer_floor") in (b"floor",
                                                                                                     "floor"):
            return F.interpolate(x, mode="nearest", **kw)
        if mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            nd = x.dim() - 2
            return F.interpolate(x, mode={1: "linear", 2: "bilinear", 3: "trilinear"}[nd],
                                 align_corners=ctm == "align_corners", **kw)
        raise NotImplementedError(f"Resize mode={mode} coordinate_transformation_mode={ctm} is not supported by the "
                                  f"PyTorch runner")

    def unary(f: Any) -> Any:
        def op(ins: list, a: dict, t: Any, *_: Any) -> Any:
            return f(t(ins[0]))

        return op

    def clip(ins: list, a: dict, t: Any, ints: Any, shapeish: Any, scalar: Any) -> Any:
        lo = scalar(ins[1]) if len(ins) > 1 and ins[1] else None
        hi = scalar(ins[2]) if len(ins) > 2 and ins[2] else None
        return torch.clamp(t(ins[0]), lo, hi)

    def flatten(ins: list, a: dict, t: Any, *_: Any) -> Any:
        x = t(ins[0])
        axis = int(a.get("axis", 1))
        axis = axis + x.dim() if axis < 0 else axis
        return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))

    _OPS.update({
        "Conv": conv, "MaxPool": maxpool, "Gemm": gemm, "Reshape": reshape, "Shape": shape, "Gather": gather,
        "Unsqueeze": unsqueeze, "Concat": concat, "Slice": slice_, "Expand": expand, "Cast": cast,
        "LayerNormalization": layer_norm, "ReduceMean": reduce_mean, "Split": split, "Resize": resize, "Clip": clip,
        "Add": binary(torch.add), "Sub": binary(torch.sub), "Mul": binary(torch.mul), "Div": div,
        "Pow": lambda ins, a, t, ints, shapeish, scalar: torch.pow(t(ins[0]), scalar(ins[1])),
        "MatMul": binary(torch.matmul),
        "Einsum": lambda ins, a, t, *_: torch.einsum(a["equation"].decode() if isinstance(a["equation"], bytes)
                                                     else a["equation"], *[t(n) for n in ins]),
        "Relu": unary(F.relu), "Sigmoid": unary(torch.sigmoid), "Erf": unary(torch.erf), "Sqrt": unary(torch.sqrt),
        "Tanh": unary(torch.tanh), "Exp": unary(torch.exp), "Neg": unary(torch.neg),
        "Identity": lambda ins, a, t, *_: t(ins[0]), "Dropout": lambda ins, a, t, *_: t(ins[0]),
        "Softmax": lambda ins, a, t, *_: torch.softmax(t(ins[0]), dim=int(a.get("axis", -1))),
        "Gelu": lambda ins, a, t, *_: F.gelu(t(ins[0]), approximate=(a.get("approximate", b"none").decode()
                                                                     if isinstance(a.get("approximate"), bytes)
                                                                     else a.get("approximate", "none"))),
        "BatchNormalization": lambda ins, a, t, *_: F.batch_norm(t(ins[0]), t(ins[3]), t(ins[4]), t(ins[1]),
                                                                 t(ins[2]), False, 0.0,
                                                                 float(a.get("epsilon", 1e-5))),
        "GlobalAveragePool": lambda ins, a, t, *_: t(ins[0]).mean(dim=list(range(2, t(ins[0]).dim())),
                                                                  keepdim=True),
        "Flatten": flatten,
        "Transpose": lambda ins, a, t, *_: t(ins[0]).permute(list(a["perm"]) if "perm" in a
                                                             else list(reversed(range(t(ins[0]).dim())))),
    })
    return OnnxModule()


_OPS: dict[str, Any] = {}
