"""Steering: change what a model generates by editing its residual stream.

Every method builds a :class:`Steering` (edits for :func:`interp.generate` / :func:`interp.trace`,
plus any SAE to splice in while they run) through one signature,
``build(m, *, layer, coef, where, **method_options) -> Steering``, and is looked up by name
in a small registry (:func:`get`, :func:`names`; :func:`register` refuses a taken name):

- ``add``: ``coef * vector`` added to ``m.hook(kind, layer)`` (``resid_pre`` by default).
- ``actadd`` (Turner et al. 2023, arXiv 2308.10248): the difference of two prompts'
  activations ``[n, d]`` at the layer (the shorter prompt padded; see :func:`actadd_vector`), added
  with ``coef`` to the first ``n`` positions of each prompt, as in the paper.
- ``caa`` (Rimsky et al. 2024, arXiv 2312.06681): the mean difference, over contrastive
  pairs, of the activation at the last token (the answer letter), collected with
  :func:`interp.collect`; added at the last prompt token and every generated token
  (``where="from_last"``: the first new token's prediction is steered too, which the
  paper's original code missed).
- ``ablate`` (Arditi et al. 2024): the direction projected out of the residual stream at every
  layer (``resid_pre``, ``resid_mid`` and the last ``resid_post``), so no component can write
  it; ``coef`` scales the projection (1 removes it).
- ``sae_add``: ``coef`` times an SAE latent's decoder row added at the SAE's hook.
- ``sae_clamp``: the SAE spliced in with its error term kept and the latent set to ``coef``;
  clamping a latent to the value it already has changes nothing (the error term is the clean
  activation's, not recomputed from the edited reconstruction).

``where`` picks positions: ``"all"``, ``"prompt"``, ``"new"`` (generated tokens only),
``"from_last"`` (the last prompt token onwards) or an int (absolute positions from it on);
see :mod:`interp.tracing.generate` for how an edit learns its positions under a key/value cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from interp.tracing.generate import (
    Generation,
    Positions,
    from_position,
    generate,
    only_new,
    only_prompt,
    takes_positions,
)
from interp.tracing.model import EditFn, Model
from interp.utils import Registry


@dataclass
class Steering:
    """An intervention ready to run: ``edits`` for ``generate``/``trace``; ``saes`` (hook ->
    SAE) are spliced in, error term kept, while :meth:`active`. ``vector`` is what was added
    (or ablated), for saving and plotting."""

    method: str
    edits: dict[str, EditFn]
    vector: torch.Tensor | None = None
    saes: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def active(self, m: Model) -> Iterator[Model]:
        """Splice this steering's SAEs into ``m`` (if any) while inside."""
        with ExitStack() as stack:
            if self.saes:
                from interp.sae.splice import spliced

                stack.enter_context(spliced(m, self.saes, error_term=True))
            yield m

    def generate(
        self, m: Model, prompts: Any, max_new_tokens: int = 32, **kwargs: Any
    ) -> Generation:
        """:func:`interp.generate` under this steering (``kwargs`` as there, except ``edits``)."""
        with self.active(m):
            return generate(m, prompts, max_new_tokens, edits=self.edits, **kwargs)

    def trace(
        self, m: Model, inputs: Any, capture: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:func:`interp.trace` under this steering (every position of ``inputs`` edited as
        the prompt positions would be)."""
        from interp.tracing.trace import trace

        T = m.prepare(inputs).shape[-1]
        pos = Positions(torch.arange(T)[None], torch.tensor([T]), 0)
        edits = {
            n: (lambda a, f=f: f(a, positions=pos)) if takes_positions(f) else f
            for n, f in self.edits.items()
        }
        with self.active(m):
            return trace(m, inputs, capture=capture, edits=edits)


# ---------------------------------------------------------------- edits
def restrict(fn: EditFn, where: Any) -> EditFn:
    """``fn`` at the positions ``where`` names (see the module docstring)."""
    if where == "all":
        return fn
    if where == "prompt":
        return only_prompt(fn)
    if where == "new":
        return only_new(fn)
    if where == "from_last":
        return from_position(-1, fn)
    if isinstance(where, int) and not isinstance(where, bool):
        return from_position(where, fn)
    raise ValueError(
        f"where must be 'all', 'prompt', 'new', 'from_last' or an int position; got {where!r}"
    )


def add_vector(vector: torch.Tensor, coef: float = 1.0, where: Any = "all") -> EditFn:
    """Edit: ``act + coef * vector`` (``vector`` ``[d]``) at the positions ``where`` names."""

    def add(act: torch.Tensor) -> torch.Tensor:
        return act + (coef * vector).to(act.device, act.dtype)

    return restrict(add, where)


def add_at_start(delta: torch.Tensor, coef: float = 1.0) -> EditFn:
    """Edit: ``act[p] + coef * delta[p]`` at each row's absolute positions ``p < len(delta)``
    (ActAdd's front-aligned injection), whatever the padding or the cache."""

    def add(act: torch.Tensor, positions: Positions) -> torch.Tensor:
        a = positions.absolute.to(act.device)  # [batch, seq]
        ok = (a >= 0) & (a < len(delta))
        d = (coef * delta).to(act.device, act.dtype)[a.clamp(0, len(delta) - 1)]  # [batch, seq, d]
        return act + d * ok[..., None].to(act.dtype)

    return add


def project_out(direction: torch.Tensor, coef: float = 1.0) -> EditFn:
    """Edit: ``act - coef * (act . r) r`` with ``r`` the unit ``direction``."""
    r = direction / direction.norm()

    def ablate(act: torch.Tensor) -> torch.Tensor:
        u = r.to(act.device, act.dtype)
        out: torch.Tensor = act - coef * (act @ u)[..., None] * u
        return out

    return ablate


# ---------------------------------------------------------------- vectors
def actadd_vector(
    m: Model, plus: str | Sequence[int], minus: str | Sequence[int], hook: str, pad: str = "pad"
) -> torch.Tensor:
    """ActAdd's steering vector ``[n, d]``: activations of ``plus`` minus those of ``minus`` at
    ``hook``, position by position. The shorter prompt is right-padded with the tokenizer's pad
    token (``pad="pad"``) or, as in the paper, with the space token (``pad="space"``). On
    SmolLM2-135M the space pad put much more into the difference: at coefficient 0.1 (layer 6,
    the weddings pair) off-topic loss went from 3.75 to 5.76 nats, against 3.2 to 3.3 with the
    pad token (see docs/analyses/steering.md)."""
    from interp.tracing.trace import trace

    if pad not in ("pad", "space"):
        raise ValueError(f"pad must be 'pad' or 'space', got {pad!r}")
    a, b = (_ids(m, p) for p in (plus, minus))
    n = max(len(a), len(b))
    fill = _space_id(m) if pad == "space" else _pad_id(m)
    x = torch.tensor([a + [fill] * (n - len(a)), b + [fill] * (n - len(b))])
    _, acts = trace(m, x, capture=[hook])
    return (acts[hook][0] - acts[hook][1]).float()


def _space_id(m: Model) -> int:
    tok = m.tokenizer
    if tok is not None:
        ids = tok.encode(" ", add_special_tokens=False)
        if len(ids) == 1:
            return int(ids[0])
    return _pad_id(m)


def caa_vector(
    m: Model, pairs: Sequence[tuple[str, str]], hook: str, batch_size: int = 16
) -> torch.Tensor:
    """CAA's steering vector ``[d]``: the mean over ``pairs`` (behaviour-matching text, other
    text; each ending in its answer) of the difference of ``hook``'s activation at the last
    token, collected with :func:`interp.collect`."""
    from interp.tracing.collect import collect

    if not pairs:
        raise ValueError("caa_vector needs at least one (positive, negative) pair")
    texts = [t for pair in pairs for t in pair]
    rows = [_ids(m, t) for t in texts]
    width, pad = max(len(r) for r in rows), _pad_id(m)
    x = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lengths = torch.tensor([len(r) for r in rows])
    acts = collect(m, x, hooks=[hook], positions="last", lengths=lengths, batch_size=batch_size)[
        hook
    ].float()
    return (acts[0::2] - acts[1::2]).mean(0)


def _ids(m: Model, p: str | Sequence[int]) -> list[int]:
    return m.to_tokens(p)[0].tolist() if isinstance(p, str) else [int(t) for t in p]


def _pad_id(m: Model) -> int:
    tok = m.tokenizer
    pad = getattr(tok, "pad_token_id", None)
    return int(pad if pad is not None else (getattr(tok, "eos_token_id", None) or 0))


# ---------------------------------------------------------------- the registry
Builder = Callable[..., Steering]
_METHODS: Registry[Builder] = Registry("steering method")
# register(name): decorator for ``build(m, *, layer, coef, where, **options) -> Steering``; a
# taken name is a ValueError. names(): the registered methods. get(name): a method's builder.
register = _METHODS.register
names = _METHODS.names
get = _METHODS.get


def build(
    m: Model,
    method: str,
    *,
    layer: int | None = None,
    coef: float = 1.0,
    where: Any = "all",
    **options: Any,
) -> Steering:
    """``get(method)(m, layer=layer, coef=coef, where=where, **options)``."""
    import math

    if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not math.isfinite(coef):
        raise ValueError(f"coef must be a finite number, got {coef!r}")
    return get(method)(m, layer=layer, coef=coef, where=where, **options)


def _layer(m: Model, layer: int | None) -> int:
    if layer is None:
        raise ValueError("this steering method needs layer=")
    return layer


@register("add")
def _add(
    m: Model,
    *,
    layer: int | None,
    coef: float,
    where: Any = "all",
    vector: torch.Tensor,
    kind: str = "resid_pre",
) -> Steering:
    hook = m.hook(kind, _layer(m, layer))
    v = torch.as_tensor(vector).float()
    return Steering("add", {hook: add_vector(v, coef, where)}, v, info={"hook": hook, "coef": coef})


@register("actadd")
def _actadd(
    m: Model,
    *,
    layer: int | None,
    coef: float,
    where: Any = "start",
    plus: str | Sequence[int],
    minus: str | Sequence[int],
    kind: str = "resid_pre",
    pad: str = "pad",
) -> Steering:
    hook = m.hook(kind, _layer(m, layer))
    delta = actadd_vector(m, plus, minus, hook, pad)
    fn = add_at_start(delta, coef) if where == "start" else add_vector(delta.sum(0), coef, where)
    return Steering("actadd", {hook: fn}, delta, info={"hook": hook, "coef": coef, "where": where})


@register("caa")
def _caa(
    m: Model,
    *,
    layer: int | None,
    coef: float,
    where: Any = "from_last",
    pairs: Sequence[tuple[str, str]] | None = None,
    vector: torch.Tensor | None = None,
    kind: str = "resid_pre",
) -> Steering:
    hook = m.hook(kind, _layer(m, layer))
    if (pairs is None) == (vector is None):
        raise ValueError(
            "caa takes pairs= (contrastive texts) or vector= (a saved CAA vector), one of them"
        )
    v = caa_vector(m, pairs, hook) if pairs is not None else torch.as_tensor(vector).float()
    return Steering("caa", {hook: add_vector(v, coef, where)}, v, info={"hook": hook, "coef": coef})


@register("ablate")
def _ablate(
    m: Model,
    *,
    layer: int | None = None,
    coef: float = 1.0,
    where: Any = "all",
    direction: torch.Tensor,
) -> Steering:
    """``layer`` is ignored: the direction is removed at every layer."""
    r = torch.as_tensor(direction).float()
    names = [
        m.hook(k, i)
        for i in range(m.n_layers)
        for k in ("resid_pre", "resid_mid")
        if f"blocks.{i}.{Model.LAYER_HOOKS[k]}" in m.hook_names
    ]
    names.append(m.hook("resid_post", m.n_layers - 1))
    fn = restrict(project_out(r, coef), where)
    return Steering(
        "ablate", {n: fn for n in names}, r / r.norm(), info={"hooks": names, "coef": coef}
    )


def _sae_hook(sae: Any, hook: str | None) -> str:
    name = hook or getattr(getattr(sae, "cfg", None), "hook_name", None)
    if not name:
        raise ValueError("the SAE names no hook (cfg.hook_name); pass hook=")
    return name


@register("sae_add")
def _sae_add(
    m: Model,
    *,
    layer: int | None = None,
    coef: float,
    where: Any = "all",
    sae: Any,
    latent: int,
    hook: str | None = None,
) -> Steering:
    """``layer`` is ignored: the SAE's hook decides."""
    name = _sae_hook(sae, hook)
    m.check_names([name])
    row = sae.folded()["W_dec"][latent].detach().float()
    return Steering(
        "sae_add",
        {name: add_vector(row, coef, where)},
        row,
        info={"hook": name, "latent": latent, "coef": coef},
    )


@register("sae_clamp")
def _sae_clamp(
    m: Model,
    *,
    layer: int | None = None,
    coef: float,
    where: Any = "all",
    sae: Any,
    latent: int,
    hook: str | None = None,
) -> Steering:
    """The latent set to ``coef`` (through the decoder, error term kept); ``layer`` ignored."""
    name = _sae_hook(sae, hook)
    m.check_names([name])

    def clamp(acts: torch.Tensor) -> torch.Tensor:
        out = acts.clone()
        out[..., latent] = coef
        return out

    row = sae.folded()["W_dec"][latent].detach().float()
    return Steering(
        "sae_clamp",
        {f"{name}.hook_sae_acts_post": restrict(clamp, where)},
        row,
        saes={name: sae},
        info={"hook": name, "latent": latent, "value": coef},
    )


# ---------------------------------------------------------------- steered vs unsteered
@dataclass
class SideBySide:
    """One prompt generated with and without a steering, and how the steering moved the
    probability of each token of the steered completion."""

    unsteered: str
    steered: str
    tokens: list[str]  # the steered completion's tokens
    p_steered: list[float]  # each token's probability under the steered model (as generated)
    p_unsteered: list[float]  # the same token's probability under the unsteered model, same prefix


def side_by_side(
    m: Model,
    prompt: str | Sequence[int],
    steering: Steering,
    max_new_tokens: int = 24,
    **kwargs: Any,
) -> SideBySide:
    """Greedy completions of ``prompt`` unsteered and under ``steering`` (``kwargs`` go to
    :func:`interp.generate`), and the per-token probability shift of the steered completion:
    one unsteered forward over the steered sequence scores its tokens teacher-forced."""
    from interp.tracing.trace import trace

    base = generate(m, [prompt], max_new_tokens, **kwargs)
    g = steering.generate(m, [prompt], max_new_tokens, **kwargs)
    n = int(g.n_new[0])
    P = g.prompt_tokens.shape[1]
    seq = g.tokens[:, : P + n]
    with torch.no_grad():
        out, _ = trace(m, seq)
    lp = (
        out[0, P - 1 : P + n - 1]
        .float()
        .log_softmax(-1)
        .gather(-1, seq[0, P:, None].to(out.device))[:, 0]
    )
    new = g.new_tokens[0, :n].tolist()
    tokens = (
        [m.tokenizer.decode([t]) for t in new] if m.tokenizer is not None else [str(t) for t in new]
    )
    return SideBySide(
        base.texts[0] if base.texts else str(base.new_tokens[0].tolist()),
        g.texts[0] if g.texts else str(new),
        tokens,
        g.token_logprobs[0, :n].exp().tolist(),
        lp.exp().tolist(),
    )


__all__ = [
    "Steering",
    "SideBySide",
    "side_by_side",
    "register",
    "names",
    "get",
    "build",
    "restrict",
    "add_vector",
    "add_at_start",
    "project_out",
    "actadd_vector",
    "caa_vector",
]
