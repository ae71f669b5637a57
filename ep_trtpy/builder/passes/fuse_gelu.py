"""fuse_gelu: decomposed GELU in its exporter spellings -> ONNX Gelu.

Math:
    erf form   gelu(x)      = x * 0.5 * (1 + erf(x / sqrt(2)))
    tanh form  gelu_tanh(x) = x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))

Exporters spell the products in many orders (x*0.5 first, (1+erf)*0.5 first, division by sqrt(2) or
multiplication by 1/sqrt(2), x^3 as Pow(x, 3) or x*x*x). The pass therefore reads a tree of single-use Mul nodes
(and Div / Pow by constants) as a multiset of factors times a constant, and compares multisets:

    Erf input        = {x} * c,  c ~ 1/sqrt(2)          Tanh input = {s} * c, c ~ sqrt(2/pi), s = x + t,
                                                                   t = {x, x, x} * c3, c3 ~ 0.044715
    p                = Add(Erf|Tanh(...), 1)
    result           = the smallest single-use Mul tree above p equal to {x, p} * 0.5

Match: the above with every intermediate used only inside the pattern; constants within 0.1 % (exporters
round sqrt(2) and sqrt(2/pi)).

Refusal: an Erf/Tanh followed by Add(1) whose surroundings are not a GELU (wrong constant, another operand than
x, an intermediate used elsewhere): the reason names the value.

Rewrite: ``Gelu(x, approximate="none"|"tanh")`` producing the pattern's result value.
"""

from __future__ import annotations

import math

from ep_trtpy.builder.passes._patterns import close, const_scalar, is_op, other_input, replace_nodes, sole_consumer
from ep_trtpy.builder.pipeline import PassContext
from graph_partitioner.ir import Graph, Node, Value

NAME = "fuse_gelu"

INV_SQRT2 = 1.0 / math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


class Product:
    """A value read as (multiset of non-constant factors) * constant, with the nodes that form the tree."""

    def __init__(self) -> None:
        self.factors: list[Value] = []
        self.const = 1.0
        self.nodes: list[Node] = []

    def same_factors(self, expected: list[Value]) -> bool:
        rest = list(self.factors)
        for v in expected:
            for k, f in enumerate(rest):
                if f is v:
                    del rest[k]
                    break
            else:
                return False
        return not rest


def product(graph: Graph, v: Value) -> Product:
    """Flatten the Mul/Div/Pow tree rooted at v (inner values must be used only by the tree)."""
    out = Product()

    def visit(u: Value | None, root: bool) -> None:
        if u is None:
            return
        c = const_scalar(u)
        if c is not None:
            out.const *= c
            return
        n = u.producer
        if n is None or not (root or sole_consumer(graph, u) is not None):
            out.factors.append(u)
            return
        a, b = n.input(0), n.input(1)
        k = const_scalar(b)
        if is_op(n, "Mul"):
            out.nodes.append(n)
            if a is b and a is not None:  # Mul(z, z): z^2
                out.factors.extend([a, a])
                return
            visit(a, False)
            visit(b, False)
        elif is_op(n, "Div") and k not in (None, 0.0):
            out.nodes.append(n)
            out.const /= k  # type: ignore[operator]
            visit(a, False)
        elif is_op(n, "Pow") and k in (2.0, 3.0) and a is not None:
            out.nodes.append(n)
            out.factors.extend([a] * int(k))  # type: ignore[arg-type]
        else:
            out.factors.append(u)

    visit(v, True)
    return out


class _Refuse(Exception):
    pass


def _x_of_inner(graph: Graph, e: Node, form: str) -> tuple[Value, list[Node]]:
    """x and the nodes computing the Erf/Tanh argument from it."""
    inner = e.input(0)
    if inner is None or sole_consumer(graph, inner) is not e:
        raise _Refuse(f"the argument of {e.op_type} '{e.name}' is used elsewhere")
    pr = product(graph, inner)
    if form == "none":
        if len(pr.factors) != 1 or not close(pr.const, INV_SQRT2):
            raise _Refuse(f"the argument of Erf '{e.name}' is not x/sqrt(2) (factor {pr.const:.6g})")
        return pr.factors[0], pr.nodes
    if len(pr.factors) != 1 or not close(pr.const, SQRT_2_OVER_PI):
        raise _Refuse(f"the argument of Tanh '{e.name}' is not sqrt(2/pi)*(...) (factor {pr.const:.6g})")
    s = pr.factors[0]
    add = s.producer
    if not is_op(add, "Add") or (s is not inner and sole_consumer(graph, s) is None):
        raise _Refuse(f"'{s.name}' is not x + 0.044715*x^3")
    for x in (add.input(0), add.input(1)):  # type: ignore[union-attr]
        t = other_input(add, x)  # type: ignore[arg-type]
        if t is None or x is None or sole_consumer(graph, t) is not add:
            continue
        cube = product(graph, t)
        if cube.same_factors([x, x, x]) and close(cube.const, CUBIC):
            return x, pr.nodes + [add] + cube.nodes  # type: ignore[list-item]
    raise _Refuse(f"'{s.name}' is not x + 0.044715*x^3")


def _match(graph: Graph, e: Node) -> tuple[Value, list[Node], Value, str] | None:
    form = "none" if e.op_type == "Erf" else "tanh"
    p_node = sole_consumer(graph, e.outputs[0])
    if p_node is None or not is_op(p_node, "Add"):
        return None
    if not close(const_scalar(other_input(p_node, e.outputs[0])), 1.0, 1e-4):
        return None
    p = p_node.outputs[0]
    x, inner_nodes = _x_of_inner(graph, e, form)
    top = p
    while True:
        nxt = sole_consumer(graph, top)
        if not is_op(nxt, "Mul", "Div"):
            raise _Refuse(f"no product x * 0.5 * '{p.name}' follows {e.op_type} '{e.name}'")
        top = nxt.outputs[0]  # type: ignore[union-attr]
        pr = product(graph, top)
        if pr.same_factors([x, p]) and close(pr.const, 0.5, 1e-4):
            return x, inner_nodes + [e, p_node] + pr.nodes, top, form  # type: ignore[list-item]
        if len(pr.factors) > 2 or any(f is not x and f is not p for f in pr.factors):
            raise _Refuse(f"'{top.name}' multiplies {e.op_type} '{e.name}' by something other than x and 0.5")


def run(graph: Graph, ctx: PassContext) -> bool:
    changed = False
    removed: set[int] = set()
    for e in list(graph.nodes):
        if id(e) in removed or not is_op(e, "Erf", "Tanh"):
            continue
        try:
            found = _match(graph, e)
        except _Refuse as err:
            ctx.refuse(f"GELU pattern at '{e.name}' not fused: {err}")
            continue
        if found is None:
            continue
        x, nodes, out, form = found
        uniq: list[Node] = []
        for n in nodes:
            if all(n is not m for m in uniq):
                uniq.append(n)
        g = replace_nodes(graph, uniq, "Gelu", [x], [out], {"approximate": form},
                          name=graph.fresh_node_name(f"{e.name}_Gelu"))
        ctx.record_fusion(g.name, uniq)
        removed.update(id(n) for n in uniq)
        changed = True
    return changed
