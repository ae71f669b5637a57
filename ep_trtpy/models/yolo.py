"""A small YOLO-style detector (YOLOv8-n layout, BatchNorm already folded into the convolutions, as detector
exporters write it), opset 17.

    conv block   Conv(k, s, pads k//2, bias) -> x * Sigmoid(x)                     (SiLU as Sigmoid + Mul)
    C2f(c, n)    y = conv1x1(x, c); a, b = Split(y, 2, axis=1);
                 b_i = b_{i-1} + conv3x3(conv3x3(b_{i-1}))  for i = 1..n;  conv1x1(Concat(a, b, b_1..b_n))
    SPPF(c)      y = conv1x1(x, c/2); p1 = MaxPool5(y); p2 = MaxPool5(p1); p3 = MaxPool5(p2);
                 conv1x1(Concat(y, p1, p2, p3))
    backbone     stem/2 -> /4 C2f -> /8 C2f (P3) -> /16 C2f (P4) -> /32 C2f -> SPPF (P5)
    neck (PAN)   Resize(P5, nearest, scales [1,1,2,2]) ++ P4 -> C2f -> Resize ++ P3 -> C2f (O3)
                 conv/2(O3) ++ N4 -> C2f (O4);  conv/2(O4) ++ P5 -> C2f (O5)
    head/level   box: conv3 -> conv3 -> Conv1x1(4*reg_max);  cls: conv3 -> conv3 -> Conv1x1(num_classes)
                 Concat -> Reshape [b, 4*reg_max+nc, h*w]; the levels are concatenated along anchors
    decode       Split(box, cls); DFL: Reshape [b,4,reg_max,A] -> Transpose(0,2,1,3) -> Softmax(axis=1, the
                 box-distribution axis) -> Conv1x1 with weights 0..reg_max-1 (expected bin) -> Reshape [b,4,A];
                 dist2bbox against constant anchor centres, times the stride; Sigmoid(cls)
    output       ``output0`` float32 [batch, 4 + num_classes, anchors] (cx, cy, w, h, class scores)

Reshapes take the batch from ``Shape`` (Gather/Unsqueeze/Concat) so the batch stays dynamic.

Weights: a trained detector's convolutions carry folded BatchNorm, which keeps every pre-activation near unit
scale. Random He weights alone do not (SiLU nets shrink or blow up exponentially with depth), so the generator
runs the network in numpy on a seeded calibration batch while writing it and folds a per-channel normalisation
into each convolution (pre-activation std 1, mean beta ~ N(0, 0.5)); the class-logit bias is -4.6 (a 1% prior),
as YOLO initialises it. (The calibration statistics go through numpy's BLAS, so weights may differ in the last bit
between machines; within one machine a seed always gives the same bytes.)
"""

from __future__ import annotations

import numpy as np
import onnx

from ep_trtpy.models._graph import ELEM_FLOAT, GraphWriter

DEFAULTS = {"width": 16, "depth": 1, "num_classes": 80, "reg_max": 16, "image_size": 320}
CI = {"width": 8, "depth": 1, "num_classes": 8, "reg_max": 8, "image_size": 64}



class _Act:
    """A value of the graph being written plus its numpy value on the calibration batch."""

    __slots__ = ("name", "val")

    def __init__(self, name: str, val: np.ndarray):
        self.name = name
        self.val = val


def _np_conv(x: np.ndarray, wt: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation of x [N,C,H,W] with wt [O,C,k,k] (ONNX Conv, group 1, symmetric pads)."""
    k = wt.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.tensordot(win, wt, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2).astype(np.float32)


def _silu(z: np.ndarray) -> np.ndarray:
    return (z / (1.0 + np.exp(-z))).astype(np.float32)


def _conv(w: GraphWriter, x: _Act, c_out: int, k: int = 1, s: int = 1, act: bool = True,
          bias_value: float | None = None, out_std: float = 1.0) -> _Act:
    """Conv (+ SiLU) with BatchNorm folded in, as a trained detector is exported: the He-initialised weight is
    rescaled per output channel so that on the calibration batch the pre-activation has standard deviation
    ``out_std`` and mean beta ~ N(0, 0.5) (or exactly ``bias_value`` when given)."""
    c_in = x.val.shape[1]
    with w.scope("conv"):
        name = w.param_name("weight")
        fan_in = c_in * k * k
        raw = w.rng(name).standard_normal((c_out, c_in, k, k), dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        z = _np_conv(x.val, raw, s, k // 2)
        mean = z.mean(axis=(0, 2, 3))
        std = z.std(axis=(0, 2, 3)) + 1e-6
        scale = (np.float32(out_std) / std).astype(np.float32)
        if bias_value is None:
            beta = w.rng(w.param_name("bias")).standard_normal(c_out, dtype=np.float32) * np.float32(0.5)
        else:
            beta = np.full((c_out,), bias_value, np.float32)
        wt = (raw * scale[:, None, None, None]).astype(np.float32)
        b = (beta - mean * scale).astype(np.float32)
        y = w.op("Conv", [x.name, w.weight("weight", wt), w.weight("bias", b)], kernel_shape=[k, k],
                 strides=[s, s], pads=[k // 2] * 4, dilations=[1, 1], group=1)
        yv = (z * scale[None, :, None, None] + b[None, :, None, None]).astype(np.float32)
    if act:
        with w.scope("act"):
            y = w.op("Mul", [y, w.op("Sigmoid", [y])])
        yv = _silu(yv)
    return _Act(y, yv)


def _split2(w: GraphWriter, x: _Act, sizes: list[int]) -> list[_Act]:
    names = w.op("Split", [x.name, w.const(sizes)], n_out=len(sizes), axis=1)
    vals = np.split(x.val, np.cumsum(sizes)[:-1], axis=1)
    return [_Act(n, v) for n, v in zip(names, vals)]


def _concat(w: GraphWriter, xs: list[_Act]) -> _Act:
    return _Act(w.op("Concat", [x.name for x in xs], axis=1), np.concatenate([x.val for x in xs], axis=1))


def _add(w: GraphWriter, a: _Act, b: _Act) -> _Act:
    return _Act(w.op("Add", [a.name, b.name]), a.val + b.val)


def _c2f(w: GraphWriter, x: _Act, c_out: int, n: int, shortcut: bool) -> _Act:
    h = c_out // 2
    with w.scope("cv1"):
        y = _conv(w, x, 2 * h)
    chunks = _split2(w, y, [h, h])
    last = chunks[-1]
    for i in range(n):
        with w.scope(f"m.{i}"):
            with w.scope("cv1"):
                t = _conv(w, last, h, 3)
            with w.scope("cv2"):
                t = _conv(w, t, h, 3)
            if shortcut:
                t = _add(w, last, t)
        chunks.append(t)
        last = t
    cat = _concat(w, chunks)
    with w.scope("cv2"):
        return _conv(w, cat, c_out)


def _np_maxpool5(x: np.ndarray) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, (5, 5), axis=(2, 3)).max(axis=(4, 5))


def _sppf(w: GraphWriter, x: _Act, c: int) -> _Act:
    with w.scope("cv1"):
        y = _conv(w, x, c // 2)
    pools = [y]
    with w.scope("m"):
        for _ in range(3):
            p = pools[-1]
            pools.append(_Act(w.op("MaxPool", [p.name], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2],
                                   dilations=[1, 1], ceil_mode=0), _np_maxpool5(p.val)))
    cat = _concat(w, pools)
    with w.scope("cv2"):
        return _conv(w, cat, c)


def _upsample(w: GraphWriter, x: _Act) -> _Act:
    name = w.op("Resize", [x.name, "", w.const([1.0, 1.0, 2.0, 2.0], np.float32)], mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return _Act(name, x.val.repeat(2, axis=2).repeat(2, axis=3))


def _batch_dim(w: GraphWriter, x: str) -> str:
    return w.op("Unsqueeze", [w.op("Gather", [w.op("Shape", [x]), w.const(0)], axis=0), w.const([0])])


def _anchors(image_size: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres [1, 2, A] (in grid units, cell centre +0.5) and strides [1, A] for all levels."""
    pts, st = [], []
    for s in strides:
        n = image_size // s
        gy, gx = np.meshgrid(np.arange(n, dtype=np.float32) + 0.5, np.arange(n, dtype=np.float32) + 0.5,
                             indexing="ij")
        pts.append(np.stack([gx.ravel(), gy.ravel()], 0))
        st.append(np.full(n * n, s, np.float32))
    return np.concatenate(pts, 1)[None], np.concatenate(st)[None]


def build(width: int = 16, depth: int = 1, num_classes: int = 80, reg_max: int = 16, image_size: int = 320,
          seed: int = 0) -> onnx.ModelProto:
    """The detector; ``width`` is the stem's channel count (every stage doubles it), ``depth`` the bottlenecks per
    C2f, ``image_size`` a multiple of 32. Input ``images`` float32 [batch, 3, image_size, image_size]."""
    if image_size % 32 or image_size < 32:
        raise ValueError(f"yolo: image_size must be a positive multiple of 32, got {image_size}")
    if width < 2 or width % 2 or depth < 1 or reg_max < 1 or num_classes < 1:
        raise ValueError(f"yolo: need an even width >= 2 and depth, reg_max, num_classes >= 1 (got width={width}, "
                         f"depth={depth}, reg_max={reg_max}, num_classes={num_classes})")
    c = width
    w = GraphWriter("yolo", seed)
    images = w.add_input("images", ELEM_FLOAT, ["batch", 3, image_size, image_size])
    # calibration batch: random images at the model's own size (border effects make statistics size-dependent)
    cal = np.random.default_rng([seed, 7]).uniform(0.0, 1.0, (2, 3, image_size, image_size)).astype(np.float32)
    x = _Act(images, cal)
    with w.scope("model"):
        with w.scope("0"):
            y = _conv(w, x, c, 3, 2)
        with w.scope("1"):
            y = _conv(w, y, 2 * c, 3, 2)
        with w.scope("2"):
            y = _c2f(w, y, 2 * c, depth, True)
        with w.scope("3"):
            y = _conv(w, y, 4 * c, 3, 2)
        with w.scope("4"):
            p3 = _c2f(w, y, 4 * c, 2 * depth, True)
        with w.scope("5"):
            y = _conv(w, p3, 8 * c, 3, 2)
        with w.scope("6"):
            p4 = _c2f(w, y, 8 * c, 2 * depth, True)
        with w.scope("7"):
            y = _conv(w, p4, 16 * c, 3, 2)
        with w.scope("8"):
            y = _c2f(w, y, 16 * c, depth, True)
        with w.scope("9"):
            p5 = _sppf(w, y, 16 * c)
        with w.scope("10"):
            y = _upsample(w, p5)
        with w.scope("11"):
            y = _concat(w, [y, p4])
        with w.scope("12"):
            n4 = _c2f(w, y, 8 * c, depth, False)
        with w.scope("13"):
            y = _upsample(w, n4)
        with w.scope("14"):
            y = _concat(w, [y, p3])
        with w.scope("15"):
            o3 = _c2f(w, y, 4 * c, depth, False)
        with w.scope("16"):
            y = _conv(w, o3, 4 * c, 3, 2)
        with w.scope("17"):
            y = _concat(w, [y, n4])
        with w.scope("18"):
            o4 = _c2f(w, y, 8 * c, depth, False)
        with w.scope("19"):
            y = _conv(w, o4, 8 * c, 3, 2)
        with w.scope("20"):
            y = _concat(w, [y, p5])
        with w.scope("21"):
            o5 = _c2f(w, y, 16 * c, depth, False)

        no = 4 * reg_max + num_classes
        c2 = max(16, c, 4 * reg_max)
        c3 = max(4 * c, min(num_classes, 100))
        flat = []
        with w.scope("22"):
            for i, feat in enumerate((o3, o4, o5)):
                with w.scope(f"cv2.{i}"):
                    with w.scope("0"):
                        b = _conv(w, feat, c2, 3)
                    with w.scope("1"):
                        b = _conv(w, b, c2, 3)
                    with w.scope("2"):
                        b = _conv(w, b, 4 * reg_max, 1, act=False, bias_value=0.0, out_std=1.5)
                with w.scope(f"cv3.{i}"):
                    with w.scope("0"):
                        k = _conv(w, feat, c3, 3)
                    with w.scope("1"):
                        k = _conv(w, k, c3, 3)
                    with w.scope("2"):
                        k = _conv(w, k, num_classes, 1, act=False, bias_value=-4.6, out_std=1.5)
                cat = w.op("Concat", [b.name, k.name], axis=1)
                shape = w.op("Concat", [_batch_dim(w, cat), w.const([no]), w.const([-1])], axis=0)
                flat.append(w.op("Reshape", [cat, shape], allowzero=0))
            allp = w.op("Concat", flat, axis=2)
            box, cls = w.op("Split", [allp, w.const([4 * reg_max, num_classes])], n_out=2, axis=1)
            with w.scope("dfl"):
                bdim = _batch_dim(w, box)
                shape = w.op("Concat", [bdim, w.const([4]), w.const([reg_max]), w.const([-1])], axis=0)
                d = w.op("Transpose", [w.op("Reshape", [box, shape], allowzero=0)], perm=[0, 2, 1, 3])
                d = w.op("Softmax", [d], axis=1)
                with w.scope("conv"):
                    proj = w.weight("weight", np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1))
                    d = w.op("Conv", [d, proj], kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0],
                             dilations=[1, 1], group=1)
                shape = w.op("Concat", [bdim, w.const([4]), w.const([-1])], axis=0)
                dist = w.op("Reshape", [d, shape], allowzero=0)
            anchors, strides = _anchors(image_size, (8, 16, 32))
            a = w.weight("anchors", anchors)
            s = w.weight("strides", strides)
            lt, rb = w.op("Split", [dist, w.const([2, 2])], n_out=2, axis=1)
            x1y1 = w.op("Sub", [a, lt])
            x2y2 = w.op("Add", [a, rb])
            cxy = w.op("Div", [w.op("Add", [x1y1, x2y2]), w.const(2.0, np.float32)])
            wh = w.op("Sub", [x2y2, x1y1])
            dbox = w.op("Mul", [w.op("Concat", [cxy, wh], axis=1), s])
            out = w.op("Concat", [dbox, w.op("Sigmoid", [cls])], axis=1)
    anchors_n = sum((image_size // s) ** 2 for s in (8, 16, 32))
    w.add_output(out, "output0", ELEM_FLOAT, ["batch", 4 + num_classes, anchors_n])
    return w.model(17, doc=f"YOLO-style detector: width={width}, depth={depth}, classes={num_classes}, "
                           f"reg_max={reg_max}, image_size={image_size}, seed={seed}")
