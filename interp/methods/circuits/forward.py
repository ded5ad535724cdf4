"""One forward pass in which every reader gets its own input, built from the writers' outputs.

The bridge computes each block's queries, keys and values from one normalised residual
stream. Here every head's q, k and v input (and every MLP's and the logits' input) is a
separate tensor, so a single edge can be patched, and a separate gradient leaf, so one
backward pass gives ``d metric / d input`` of every reader. How, with hooks only:

- ``hook_resid_pre`` of block ``l`` is the attention readers' shared input ``x``; at
  ``hook_q`` / ``hook_k`` / ``hook_v`` the values are recomputed per head from each reader's
  own input, ``norm(x_r) @ W[h] + b[h]`` (``Model.attn_weights``, ``Model.norm_module``), so
  rotary, masking and softmax stay the bridge's;
- the MLP reader's input is edited at ``ln2.hook_in``, the logits' at ``ln_final.hook_in``
  (these hooks feed only the norm, not the residual stream);
- writers are recorded as they run: block 0's ``hook_resid_pre`` (the embedding),
  ``hook_z @ W_O[h]`` per head, ``hook_mlp_out``.

A *patch* ``P [copies, writers, readers]`` (1 = the edge carries the source run's value)
sets reader ``r``'s input to ``actual_r - sum_u P[u, r] (a_u - a_u^src)``; equivalently
``src_in_r + sum_u (1 - P[u, r]) (a_u - a_u^src)``, whichever touches fewer writers. Writers
are recomputed from their (patched) inputs, so this is the circuit run of Hanna et al. (2024)
and, with one edge per copy, exact edge patching. Copies run side by side in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch
from jaxtyping import Float

from interp.methods.circuits.graph import Graph, make_graph
from interp.tracing.gradients import Metric, metric_grads_batch
from interp.tracing.hooks import EditFn
from interp.tracing.model import Model
from interp.tracing.trace import trace

ReaderKey = tuple[str | int, ...]  # a reader group: ("attn", layer), ("mlp", layer), ("logits",)
Weights = dict[str, torch.Tensor | None]  # one block's attention weights (Model.attn_weights)


@dataclass
class RunActs:
    """What one run wrote and what its readers read: ``writers [b, pos, writers, d_model]``
    and each reader group's actual input ``[b, pos, d_model]`` (key ``("attn", l)``,
    ``("mlp", l)`` or ``("logits",)``)."""

    writers: Float[torch.Tensor, "b pos writers d_model"]
    inputs: dict[ReaderKey, torch.Tensor] = field(default_factory=dict)

    def mix(self, other: RunActs, alpha: float) -> RunActs:
        """``self + alpha (other - self)`` for writers and inputs (still a sum of writers)."""
        if alpha == 1.0:
            return other
        return RunActs(
            self.writers + alpha * (other.writers - self.writers),
            {k: v + alpha * (other.inputs[k] - v) for k, v in self.inputs.items()},
        )


@dataclass
class RunOut:
    """Logits of a run, its :class:`RunActs` (when recorded) and its reader gradient leaves
    (``(reader indices, leaf [B, pos, R, d_model])`` per reader group, with ``grad``)."""

    logits: torch.Tensor
    acts: RunActs | None
    leaves: list[tuple[list[int], torch.Tensor]]

    def recorded(self) -> RunActs:
        """:attr:`acts`, which a run made with ``record=False`` does not keep."""
        if self.acts is None:
            raise ValueError("this run kept no activations: run it with record=True")
        return self.acts


def _weights(m: Model, g: Graph) -> list[Weights]:
    return [m.attn_weights(layer) for layer in range(g.n_layers)]


def _weight(w: Weights, name: str) -> torch.Tensor:
    """Weight ``name`` of one block's :func:`_weights` (biases may be None, matrices not)."""
    t = w[name]
    if t is None:
        raise ValueError(f"attention weight {name} missing: edge circuits need {name}")
    return t


class _Runner:
    """The hooks of one run (see the module docstring)."""

    def __init__(
        self,
        m: Model,
        g: Graph,
        B: int,
        copies: int,
        patch: torch.Tensor | None,
        src: RunActs | None,
        grad: bool,
        record: bool,
        input_embed: torch.Tensor | None,
    ) -> None:
        self.m, self.g, self.B, self.C = m, g, B, copies
        self.patch, self.src, self.grad = patch, src, grad
        self.record, self.input_embed = record or patch is not None, input_embed
        self.W = _weights(m, g)
        self.norms = [m.norm_module("ln1", layer) for layer in range(g.n_layers)]
        self.buf: torch.Tensor | None = None
        # the source's writers as [b, pos, d_model, writers] (a view when src came from a run)
        self.src_t = None if src is None else src.writers.transpose(-1, -2).contiguous()
        self.inputs: dict[ReaderKey, torch.Tensor] = {}
        self.leaves: list[tuple[list[int], torch.Tensor]] = []
        self.attn_x: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ writers
    def _put(self, idx: slice | int, value: torch.Tensor) -> None:
        """Record writer outputs ``[B, pos, d]`` (or ``[B, pos, k, d]`` for a slice of ``k``) in
        the buffer ``[B, pos, d_model, writers]``: writers last, so that a patch is one matrix
        product over the writers without a copy."""
        if not self.record:
            return
        if self.buf is None:
            B, T, d = value.shape[0], value.shape[1], value.shape[-1]
            # every slot is written before it is read: readers see only the writers before them
            self.buf = torch.empty(
                B, T, d, self.g.n_writers, dtype=value.dtype, device=value.device
            )
        v = value.detach()
        self.buf[:, :, :, idx] = v.transpose(-1, -2) if v.ndim == 4 else v

    def embed(self, act: torch.Tensor) -> torch.Tensor:
        if self.input_embed is not None:
            act = self.input_embed.to(act.dtype)
        self._put(0, act)
        return act

    def heads(self, layer: int, z: torch.Tensor) -> None:
        if self.record:
            out = torch.einsum(
                "bphe,hed->bphd", z.detach(), _weight(self.W[layer], "W_O").to(z.dtype)
            )  # [B, pos, head, d]
            start = self.g.head_writer(layer, 0)
            self._put(slice(start, start + self.g.n_heads), out)

    # ------------------------------------------------------------------ readers
    def inputs_of(self, key: ReaderKey, actual: torch.Tensor, readers: list[int]) -> torch.Tensor:
        """``[B, pos, R, d]``: each reader's input (patched), plus a gradient leaf if asked."""
        self.inputs[key] = actual.detach()
        x = actual[:, :, None, :].expand(-1, -1, len(readers), -1)
        if self.patch is not None:
            x = self._patched(x, actual, key, readers, self.patch)
        if self.grad:
            leaf = torch.zeros(x.shape, dtype=x.dtype, device=x.device, requires_grad=True)
            self.leaves.append((readers, leaf))
            x = x + leaf
        return x

    def _patched(
        self,
        x: torch.Tensor,
        actual: torch.Tensor,
        key: ReaderKey,
        readers: list[int],
        patch: torch.Tensor,
    ) -> torch.Tensor:
        n_up = int(self.g.n_up[readers[0]])
        P = patch[:, :n_up][:, :, readers].to(x.dtype)  # [C, U, R]
        on = P.amax((0, 2)) > 0  # writers patched into some reader here
        off = (1 - P).amax((0, 2)) > 0  # writers kept somewhere here
        if not bool(on.any()):
            return x
        if self.src is None or self.src_t is None or self.buf is None:
            # run() refuses a patch without src; the embedding writer is recorded before any read
            raise ValueError("a patched reader needs the source run and this run's writers")
        C, B, T, d = self.C, self.B // self.C, actual.shape[1], actual.shape[-1]
        R, U = len(readers), self.g.n_writers
        if int(on.sum()) <= int(off.sum()):  # start from this run's input, take patched edges out
            M, sign, base = P, -1.0, actual.view(C, B, T, d)
        else:  # start from the source's input, put the kept edges back
            M, sign = 1 - P, 1.0
            base = self.src.inputs[key].to(x.dtype)[None].expand(C, -1, -1, -1)
        out = base[:, :, :, None, :].expand(-1, -1, -1, R, -1).clone()  # [C, B, T, R, d]
        rows = (M.amax((0, 1)) > 0).nonzero()[:, 0]  # readers that need writer terms at all
        if len(rows):
            Mr = M[:, :, rows]  # [C, U, r]
            cur = self.buf.view(C, B * T * d, U)[:, :, :n_up]  # this run's writers, no copy
            src = self.src_t.view(B * T * d, U)[:, :n_up]  # the source's writers
            r = len(rows)
            s_term = (src @ Mr.permute(1, 0, 2).reshape(n_up, C * r)).view(B * T * d, C, r)
            delta = torch.bmm(cur, Mr) - s_term.permute(1, 0, 2)  # [C, B*T*d, r]
            out[:, :, :, rows] += sign * delta.view(C, B, T, d, r).transpose(-1, -2)
        return out.reshape(C * B, T, R, d)

    def qkv(self, layer: int, which: str, act: torch.Tensor) -> torch.Tensor:
        g = self.g
        if not (self.grad or self.patch is not None):
            return act
        H, K = g.n_heads, g.n_kv_heads
        part = {"q": slice(0, H), "k": slice(H, H + K), "v": slice(H + K, H + 2 * K)}[which]
        x = self.attn_x[layer][:, :, part]  # [B, pos, heads of this kind, d]
        W, b = _weight(self.W[layer], f"W_{which.upper()}"), self.W[layer][f"b_{which.upper()}"]
        out = torch.einsum(
            "bphd,hde->bphe", self.norms[layer](x), W.to(x.dtype)
        )  # [B, pos, head, d_head]
        if b is not None:
            out = out + b.to(x.dtype)
        return out.to(act.dtype)

    def resid_pre(self, layer: int, act: torch.Tensor) -> torch.Tensor:
        if self.grad or self.patch is not None:
            s = self.g.attn_readers(layer)
            self.attn_x[layer] = self.inputs_of(("attn", layer), act, list(range(s.start, s.stop)))
        else:
            self.inputs[("attn", layer)] = act.detach()
        return act

    def single(self, key: ReaderKey, reader: int, act: torch.Tensor) -> torch.Tensor:
        if not (self.grad or self.patch is not None):
            self.inputs[key] = act.detach()
            return act
        return self.inputs_of(key, act, [reader])[:, :, 0].to(act.dtype)

    def layer0(self, act: torch.Tensor) -> torch.Tensor:
        return self.resid_pre(0, self.embed(act))

    def z(self, layer: int, act: torch.Tensor) -> torch.Tensor:
        self.heads(layer, act)
        return act

    def mlp_out(self, layer: int, act: torch.Tensor) -> torch.Tensor:
        self._put(self.g.mlp_writer(layer), act)
        return act

    # ------------------------------------------------------------------ edits
    def edits(self) -> dict[str, EditFn]:
        m, g = self.m, self.g
        e: dict[str, EditFn] = {m.hook("resid_pre", 0): self.layer0}
        for layer in range(g.n_layers):
            if layer:
                e[m.hook("resid_pre", layer)] = partial(self.resid_pre, layer)
            for c in "qkv":
                e[m.hook(c, layer)] = partial(self.qkv, layer, c)
            e[m.hook("z", layer)] = partial(self.z, layer)
            if g.has_mlp:
                e[m.norm_input_hook("ln2", layer)] = partial(
                    self.single, ("mlp", layer), g.mlp_reader(layer)
                )
                e[m.hook("mlp_out", layer)] = partial(self.mlp_out, layer)
        e[m.norm_input_hook("ln_final")] = partial(self.single, ("logits",), g.logits_reader)
        return e


def run(
    m: Model,
    g: Graph,
    tokens: torch.Tensor,
    *,
    patch: torch.Tensor | None = None,
    src: RunActs | None = None,
    grad: bool = False,
    record: bool = True,
    input_embed: torch.Tensor | None = None,
) -> RunOut:
    """One forward of ``tokens [b, pos]`` through the split readers.

    ``patch [copies, writers, readers]`` (bool or float, 1 = the edge carries ``src``'s
    value; ``src`` from a run on the same ``b`` prompts): the batch runs ``copies`` times, copy
    ``c`` patched by ``patch[c]`` (logits ``[copies * b, pos, vocab]``, copy-major).
    ``grad``: gradient leaves at every reader input (:attr:`RunOut.leaves`).
    ``input_embed [b, pos, d_model]`` replaces the input embedding (block 0's
    ``hook_resid_pre``). ``record``: keep the writers' outputs and the readers' inputs."""
    tokens = m.prepare(tokens)
    copies = 1
    if patch is not None:
        if src is None:
            raise ValueError("a patch needs `src`: the RunActs of the source (e.g. corrupt) run")
        if patch.ndim == 2:
            patch = patch[None]
        if tuple(patch.shape[1:]) != (g.n_writers, g.n_readers):
            raise ValueError(
                f"patch has shape {tuple(patch.shape)}; expected [copies, {g.n_writers}, "
                f"{g.n_readers}] (writers x readers of the graph)"
            )
        if src.writers.shape[0] != len(tokens):
            raise ValueError(f"src holds {src.writers.shape[0]} prompts, tokens {len(tokens)}")
        patch = patch.to(tokens.device)
        copies = patch.shape[0]
        tokens = tokens.repeat(copies, 1)  # copy-major
        if input_embed is not None:
            input_embed = input_embed.repeat(copies, 1, 1)
    runner = _Runner(m, g, len(tokens), copies, patch, src, grad, record, input_embed)
    out, _ = trace(m, tokens, edits=runner.edits(), grad=grad)
    acts = None
    if runner.record and runner.buf is not None:  # writers as [b, pos, writers, d_model] (a view)
        acts = RunActs(runner.buf.transpose(-1, -2), runner.inputs)
    return RunOut(out, acts, runner.leaves)


def reader_grads(
    out: RunOut, values: torch.Tensor, g: Graph
) -> Float[torch.Tensor, "b pos readers d_model"]:
    """``d values.sum() / d input`` of every reader, ``[b, pos, readers, d_model]``, from a
    ``run(..., grad=True)``."""
    leaves = [leaf for _, leaf in out.leaves]
    grads = torch.autograd.grad(values.sum(), leaves, allow_unused=True)
    B, T, _, d = leaves[0].shape
    G = torch.zeros(B, T, g.n_readers, d, dtype=leaves[0].dtype, device=leaves[0].device)
    for (readers, _leaf), gr in zip(out.leaves, grads, strict=True):
        if gr is not None:
            G[:, :, readers] = gr
    return G


# ---------------------------------------------------------------------- graph of a model
def build_graph(m: Model, *, check: bool = True) -> Graph:
    """The edge graph of TransformerLens-backed transformer ``m``.

    With ``check`` (default) three identities the graph relies on are tested on two short
    random prompts, and the model is refused (``ValueError`` with the reason) when one fails:
    the split-reader forward reproduces the model's logits; the logits' input is the sum of
    the writers' outputs plus the attention output biases; patching every edge from a second
    prompt's run gives that prompt's logits. Post-norm models (BERT) are refused up front."""
    if m.backend != "tl" or m.kind not in ("transformer",) or not m.n_layers:
        raise ValueError(
            f"{m.model_id}: edge circuits need a TransformerLens transformer "
            f"(backend 'tl', kind 'transformer'); got backend {m.backend!r}, kind {m.kind!r}"
        )
    if m.post_norm:
        raise ValueError(
            f"{m.model_id} normalises after attention (post-LN, e.g. BERT): a reader's input "
            "is not the sum of the writers' outputs, so edge patching is undefined here"
        )
    names = set(m.hook_names)
    has_mlp = not bool(getattr(m.cfg, "attn_only", False)) and "blocks.0.hook_mlp_out" in names
    g = make_graph(
        m.model_id, m.n_layers, int(m.cfg.n_heads), m.n_kv_heads, has_mlp, m.parallel_attn_mlp
    )
    if check:
        check_graph(m, g)
    return g


def check_graph(m: Model, g: Graph, n_pos: int = 5) -> None:
    """Raise ``ValueError`` naming the identity that fails on ``m`` (see :func:`build_graph`)."""
    gen = torch.Generator().manual_seed(0)
    vocab = int(m.d_vocab or 2)
    x1, x2 = torch.randint(0, vocab, (2, 2, n_pos), generator=gen).to(m.device)
    with torch.no_grad():
        plain1, _ = trace(m, x1)
        plain2, _ = trace(m, x2)
        r1 = run(m, g, x1, patch=torch.zeros(1, g.n_writers, g.n_readers), src=run(m, g, x1).acts)
        b_O = [b for w in _weights(m, g) if (b := w["b_O"]) is not None]
        total = r1.recorded().writers.sum(2) + (sum(b_O) if b_O else 0)
        r2 = run(m, g, x1, patch=torch.ones(1, g.n_writers, g.n_readers), src=run(m, g, x2).acts)

    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return float((a - b).abs().max()) <= 1e-3 * (1.0 + float(b.abs().max()))

    why = (
        f"{m.model_id}: edge circuits need a pre-norm transformer whose readers read the sum "
        "of the writers"
    )
    if not close(r1.logits, plain1):
        raise ValueError(
            f"{why}; rebuilding each head's q/k/v from its own normalised input "
            "(norm(x) @ W + b) does not reproduce the model's logits"
        )
    if not close(total, r1.recorded().inputs[("logits",)]):
        raise ValueError(
            f"{why}; the final norm's input is not embedding + heads' outputs + b_O + MLPs"
        )
    if not close(r2.logits, plain2):
        raise ValueError(
            f"{why}; patching every edge from another prompt's run does not give that prompt's "
            "logits (some component reads the residual stream outside the graph)"
        )


# ---------------------------------------------------------------------- gradients, fast path
def reader_hooks(m: Model, g: Graph) -> list[str]:
    """Hooks whose gradients give every reader's: each layer's ``hook_resid_pre`` (the
    attention readers' shared input), ``hook_q/k/v``, the MLP's ``ln2.hook_in``, the
    unembedding's ``ln_final.hook_in``; and the writers' ``hook_z`` / ``hook_mlp_out``."""
    names = []
    for layer in range(g.n_layers):
        names += [
            m.hook("resid_pre", layer),
            *(m.hook(c, layer) for c in "qkv"),
            m.hook("z", layer),
        ]
        if g.has_mlp:
            names += [m.norm_input_hook("ln2", layer), m.hook("mlp_out", layer)]
    return names + [m.norm_input_hook("ln_final")]


def writer_outputs(m: Model, g: Graph, acts: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[b, pos, writers, d_model]`` from captured ``hook_resid_pre`` (block 0), ``hook_z``
    and ``hook_mlp_out``."""
    parts = [acts[m.hook("resid_pre", 0)][:, :, None]]
    for layer in range(g.n_layers):
        z = acts[m.hook("z", layer)]
        W_O = _weight(m.attn_weights(layer), "W_O").to(z.dtype)
        parts.append(torch.einsum("bphe,hed->bphd", z, W_O))
        if g.has_mlp:
            parts.append(acts[m.hook("mlp_out", layer)][:, :, None])
    return torch.cat(parts, 2).detach()


ReaderGrads = list[
    tuple[list[int], torch.Tensor]
]  # (reader indices, gradient [b, pos, R, d_model])


def fast_reader_grads(
    m: Model,
    g: Graph,
    tokens: torch.Tensor,
    metric: Metric,
    idx: torch.Tensor,
    input_embed: torch.Tensor | None = None,
    writers: bool = True,
) -> tuple[ReaderGrads, torch.Tensor | None]:
    """Every reader's gradient from one plain forward and backward
    (:func:`interp.tracing.gradients.metric_grads_batch`), equal to :func:`reader_grads` of a
    split ``run``: while every reader of a layer reads the same ``x``, the gradient at head
    ``h``'s query input is ``J_norm(x)^T (W_Q[h] g_q[h])``, the norm's vector-Jacobian product
    at ``x``, taken on ``R`` copies of ``x``. ``ln2.hook_in`` and ``ln_final.hook_in`` get a copy
    of their input, so their gradient is the norm's alone, not the residual stream's.

    Returns ``(groups, writers)``: per reader group (a layer's q/k/v readers, an MLP, the
    logits) its reader indices and gradient ``[b, pos, R, d_model]`` (see
    :func:`dense_grads`), and with ``writers`` the writers' outputs ``[b, pos, writers,
    d_model]``."""
    hooks = [h for h in reader_hooks(m, g) if writers or not h.endswith(("hook_z", "hook_mlp_out"))]
    first = m.hook("resid_pre", 0)
    edits: dict[str, EditFn] = {
        h: (lambda a: a.clone()) for h in hooks if h.endswith("ln2.hook_in")
    }
    edits[m.norm_input_hook("ln_final")] = lambda a: a.clone()
    if input_embed is not None:
        edits[first] = lambda a: input_embed.to(a.dtype)
    grads, acts, _ = metric_grads_batch(m, tokens, metric, hooks, idx=idx, edits=edits)
    dt = acts[first].dtype
    groups: ReaderGrads = []
    for layer in range(g.n_layers):
        W = m.attn_weights(layer)
        gW = torch.cat(
            [
                torch.einsum(
                    "bphe,hde->bphd", grads[m.hook(c, layer)], _weight(W, f"W_{c.upper()}").to(dt)
                )
                for c in "qkv"
            ],
            2,
        )  # [b, pos, R, d]: gradient at each reader's normalised input
        # the norm's vector-Jacobian product on R copies of x in a small local graph (faster on
        # a CPU than one forward with torch.func.vjp and its backward vmapped over the readers)
        with torch.enable_grad():
            x = acts[m.hook("resid_pre", layer)][:, :, None, :]
            x = x.expand(-1, -1, gW.shape[2], -1).clone().requires_grad_(True)
            (gx,) = torch.autograd.grad(m.norm_module("ln1", layer)(x), x, gW)
        s = g.attn_readers(layer)
        groups.append((list(range(s.start, s.stop)), gx.detach()))
        if g.has_mlp:
            groups.append(
                ([g.mlp_reader(layer)], grads[m.norm_input_hook("ln2", layer)][:, :, None])
            )
    groups.append(([g.logits_reader], grads[m.norm_input_hook("ln_final")][:, :, None]))
    return groups, (writer_outputs(m, g, acts) if writers else None)


def dense_grads(groups: ReaderGrads, g: Graph) -> torch.Tensor:
    """The groups of :func:`fast_reader_grads` as one ``[b, pos, readers, d_model]`` tensor."""
    B, T, _, d = groups[0][1].shape
    G = torch.zeros(B, T, g.n_readers, d, dtype=groups[0][1].dtype, device=groups[0][1].device)
    for readers, gr in groups:
        G[:, :, readers] = gr
    return G
