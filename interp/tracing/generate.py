"""``generate``: autoregressive generation with edits and captures at every step.

::

    g = interp.generate(m, ["The cat", "Once upon a time"], max_new_tokens=32,
                        edits={m.hook("resid_post", 3): from_position(-1, add(v))})
    g.texts                     # the continuations
    g.tokens                    # [batch, prompt + new], prompts left-padded
    g.activation("blocks.3.hook_resid_post")   # [batch, prompt + new - 1, d_model]

The one generation loop of the library (the explorer, :mod:`interp.methods.completion` and the
knockout fast path's key/value handling share it). Three ways to run a step
(:mod:`interp.tracing.steps`):

- **Hugging Face models** under a TransformerLens bridge: the model's own key/value cache (a
  ``DynamicCache``), with explicit ``attention_mask`` and ``position_ids``, through the HF
  module tree whose components the bridge has replaced in place (so every bridge hook fires).
- **Zoo transformers** (``boot_native``): TransformerLens's ``NativeAttention`` keeps no cache,
  so :class:`NativeKV` stands in for each layer's attention forward while generating and keeps
  the keys and values itself (rotary phases, grouped key/value heads and the pattern hook are
  the module's own).
- **Anything else** (nnsight-wrapped modules, our RNNs): no cache; each step recomputes the
  whole sequence through :func:`interp.trace`, one prompt at a time when lengths differ (such
  modules take no attention mask). ``use_cache=False`` forces this recompute for every model
  (with the attention mask where the model takes one), which is how the cache is checked.

With a cache a hook sees the whole prompt once and then one position per step, so an edit that
indexes positions would silently go wrong. An edit may therefore take a ``positions`` keyword:
it is given a :class:`Positions` with each row's absolute position of every activation row it
receives (``-1`` for padding) and the prompt lengths. :func:`only_prompt`, :func:`only_new` and
:func:`from_position` build position-restricted edits from any plain edit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch

from interp.tracing.hooks import EditFn
from interp.tracing.model import Model
from interp.tracing.steps import (
    HFStep,
    NativeKV,
    NativeStep,
    TraceStep,
    cache_arg,
    cache_kind,
    hf_cache_kwargs,
    hf_model,
)


# ---------------------------------------------------------------- positions seen by an edit
@dataclass
class Positions:
    """What an edit is told about the activation rows it receives in one forward.

    ``absolute`` ``[batch, seq]``: position of each row's token counted from that row's first
    real token (``-1`` for left padding); ``prompt_len`` ``[batch]``: real prompt tokens per
    row; ``step``: 0 for the prompt, ``t`` for the forward that reads the ``t``-th new token.
    The token at ``prompt_len - 1`` (the last prompt token) predicts the first new token."""

    absolute: torch.Tensor
    prompt_len: torch.Tensor
    step: int

    def where(self, act: torch.Tensor, mask: torch.Tensor, pos_dim: int = 1) -> torch.Tensor:
        """``mask`` ``[batch, seq]`` reshaped to broadcast against ``act`` along ``pos_dim``."""
        shape = [1] * act.ndim
        shape[0], shape[pos_dim] = mask.shape
        return mask.to(act.device).view(shape)


def takes_positions(fn: Callable[..., Any]) -> bool:
    """Whether an edit function accepts a ``positions`` keyword."""
    try:
        return "positions" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _restricted(fn: EditFn, keep: Callable[[Positions], torch.Tensor], pos_dim: int) -> EditFn:
    pass_pos = takes_positions(fn)

    def edit(act: torch.Tensor, positions: Positions) -> torch.Tensor:
        new = fn(act, positions=positions) if pass_pos else fn(act)
        mask = keep(positions)
        if not bool(mask.any()):
            return act
        return torch.where(positions.where(act, mask, pos_dim), new, act)

    return edit


def only_prompt(fn: EditFn, pos_dim: int = 1) -> EditFn:
    """``fn`` applied at prompt positions only (``pos_dim`` 2 for attention patterns)."""
    return _restricted(
        fn, lambda p: (p.absolute >= 0) & (p.absolute < p.prompt_len[:, None]), pos_dim
    )


def only_new(fn: EditFn, pos_dim: int = 1) -> EditFn:
    """``fn`` applied at generated tokens only. The first new token is predicted from the last
    prompt position, which this leaves alone (CAA's original code had exactly that off-by-one);
    ``from_position(-1, fn)`` steers that prediction too."""
    return _restricted(fn, lambda p: p.absolute >= p.prompt_len[:, None], pos_dim)


def from_position(start: int, fn: EditFn, pos_dim: int = 1) -> EditFn:
    """``fn`` applied at absolute positions ``>= start``; a negative ``start`` counts from the
    end of each row's prompt (``-1``: the last prompt token onwards)."""

    def keep(p: Positions) -> torch.Tensor:
        lo = (
            p.prompt_len[:, None] + start
            if start < 0
            else torch.full_like(p.prompt_len[:, None], start)
        )
        return (p.absolute >= 0) & (p.absolute >= lo)

    return _restricted(fn, keep, pos_dim)


# ---------------------------------------------------------------- the result
@dataclass
class Generation:
    """What :func:`generate` returns. Row ``i``'s prompt occupies the last ``prompt_len[i]``
    columns of ``prompt_tokens`` (left padding with ``pad_id``)."""

    tokens: torch.Tensor  # [batch, P + T]: left-padded prompts, then the new tokens
    prompt_tokens: torch.Tensor  # [batch, P]
    new_tokens: torch.Tensor  # [batch, T]; after a stop token: pad_id
    prompt_len: torch.Tensor  # [batch] real prompt tokens per row
    token_logprobs: torch.Tensor  # [batch, T] log-probability of each new token when chosen
    texts: list[str]  # decoded continuations (up to the stop token), or [] without tokenizer
    finished: torch.Tensor  # [batch] bool: stopped at a stop token
    n_new: torch.Tensor  # [batch] new tokens up to and including the stop token (the rest is pad)
    steps: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # captures per step
    logits: torch.Tensor | None = None  # [batch, T, vocab] with return_logits=True
    cache: str = "none"  # "hf", "native" or "none" (recompute)
    pad_id: int = 0

    def activation(self, name: str) -> torch.Tensor:
        """The captured ``name`` over every step, joined along positions:
        ``[batch, P + T - 1, ...]`` (the last new token is never fed back)."""
        if name not in self.steps:
            raise KeyError(f"{name!r} was not captured; captured: {sorted(self.steps)}")
        if name.endswith(("hook_pattern", "hook_attn_scores")):
            raise ValueError(f"{name}: patterns grow in keys each step; read g.steps[{name!r}]")
        return torch.cat(self.steps[name], dim=1)


# ---------------------------------------------------------------- prompts and sampling
def prompt_ids(
    m: Model,
    prompts: Any,
    *,
    chat: bool = False,
    system: str | None = None,
    prepend_bos: bool = True,
) -> list[list[int]]:
    """Token ids per prompt: texts are tokenised one by one (with the tokenizer's chat
    template when ``chat``); a ``[batch, pos]`` tensor or a list of id lists is taken as is."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, torch.Tensor):
        if prompts.ndim == 1:
            prompts = prompts[None]
        rows: list[list[int]] = prompts.tolist()
    elif (
        isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, str) for p in prompts)
    ):
        rows = [_encode(m, p, chat, system, prepend_bos) for p in prompts]
    elif (
        isinstance(prompts, (list, tuple))
        and prompts
        and all(isinstance(p, (list, tuple)) for p in prompts)
    ):
        rows = [[int(t) for t in p] for p in prompts]
    else:
        got = (
            "an empty list"
            if isinstance(prompts, (list, tuple)) and not prompts
            else type(prompts).__name__
        )
        raise TypeError(
            "prompts: a text, a list of texts, a list of token-id lists or a LongTensor "
            f"[batch, pos]; got {got}"
        )
    if any(len(r) == 0 for r in rows):
        raise ValueError("prompts: every prompt needs at least one token")
    for r in rows:
        m.check_tokens(torch.tensor(r)[None])
    return rows


def _encode(m: Model, text: str, chat: bool, system: str | None, prepend_bos: bool) -> list[int]:
    tok = m.tokenizer
    if tok is None:
        raise ValueError(f"{m.model_id} has no tokenizer: pass token ids instead of text")
    if not chat:
        return m.to_tokens(text, prepend_bos=prepend_bos)[0].tolist()
    if not getattr(tok, "chat_template", None):
        raise ValueError(
            f"chat=True, but the tokenizer of {m.model_id} has no chat template; "
            "pass chat=False and format the prompt yourself"
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}
    ]
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return [int(t) for t in tok.encode(rendered, add_special_tokens=False)]


def choose(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Next token ``[batch]`` from ``logits`` ``[batch, vocab]``: argmax, or a draw after
    temperature, top-k and top-p (nucleus) filtering."""
    if not do_sample:
        return logits.argmax(-1)
    x = logits.float() / temperature
    if top_k is not None and top_k < x.shape[-1]:
        kth = x.topk(top_k, dim=-1).values[:, -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        srt, idx = x.sort(-1, descending=True)
        cum = srt.softmax(-1).cumsum(-1)
        drop = (cum - srt.softmax(-1)) >= top_p  # keep the smallest prefix reaching top_p
        x = x.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return torch.multinomial(x.softmax(-1), 1, generator=generator)[:, 0]


def _check_options(
    m: Model,
    rows: list[list[int]],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    stop_tokens: Sequence[int] | None = None,
) -> None:
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p!r}")
    vocab = m.d_vocab
    bad = [t for t in (stop_tokens or []) if vocab is not None and not 0 <= int(t) < vocab]
    if bad and vocab is not None:
        raise ValueError(
            f"stop_tokens {bad} are not token ids of {m.model_id} (valid: 0..{vocab - 1})"
        )
    n_ctx = getattr(m.cfg, "n_ctx", None) if m.kind == "transformer" else None
    longest = max(len(r) for r in rows) + max_new_tokens - 1
    if n_ctx and longest > n_ctx:
        raise ValueError(
            f"the longest prompt plus max_new_tokens - 1 is {longest} tokens; {m.model_id} "
            f"takes at most n_ctx={n_ctx}"
        )


# ---------------------------------------------------------------- the loop
def generate(
    m: Model,
    prompts: Any,
    max_new_tokens: int = 32,
    *,
    edits: dict[str, EditFn] | None = None,
    capture: Sequence[str] | str = (),
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    stop_tokens: Sequence[int] | None = None,
    chat: bool = False,
    system: str | None = None,
    prepend_bos: bool = True,
    use_cache: bool = True,
    return_logits: bool = False,
) -> Generation:
    """Generate up to ``max_new_tokens`` after each prompt, with ``edits`` applied in every
    forward (prompt and new tokens alike) and ``capture`` kept per step.

    Args:
        m: a causal language model (:func:`interp.load_model` or :func:`interp.wrap`).
        prompts: a text, a list of texts, a list of token-id lists or a ``[batch, pos]``
            LongTensor. Prompts of different lengths are left-padded, with an attention mask
            and position ids that make each row's result what it would be alone.
        edits: ``{hook name: fn}`` as in :func:`interp.trace`; a ``fn`` with a ``positions``
            keyword also gets a :class:`Positions` (see :func:`from_position`).
        capture: hook names; ``g.steps[name]`` lists one tensor per forward (the prompt,
            then one new position each), ``g.activation(name)`` joins them.
        do_sample: draw tokens (``temperature``, ``top_k``, ``top_p``, reproducible by
            ``seed``); greedy (argmax) otherwise.
        stop_tokens: a row stops after emitting one of these (default: the tokenizer's EOS;
            ``()`` never stops); later tokens of that row are the pad id.
        chat: wrap each text prompt in the tokenizer's chat template (a user turn, after an
            optional ``system`` turn) with the generation prompt added.
        prepend_bos: prepend BOS when tokenising plain text (as ``m.to_tokens``).
        use_cache: use the model's key/value cache (Hugging Face models, zoo transformers);
            False recomputes the whole sequence every step (for checks).
        return_logits: keep each step's logits ``[batch, T, vocab]`` (unedited by sampling).
    """
    if getattr(m.cfg, "attention_dir", "causal") != "causal":
        raise ValueError(
            f"generate needs a causal language model; {m.model_id} attends both ways "
            "(a masked LM: fill slots with interp.methods.completion.complete)"
        )
    capture = [capture] if isinstance(capture, str) else list(dict.fromkeys(capture))
    edits = dict(edits or {})
    m.check_names([*capture, *edits])
    rows = prompt_ids(m, prompts, chat=chat, system=system, prepend_bos=prepend_bos)
    _check_options(m, rows, max_new_tokens, temperature, top_k, top_p, stop_tokens)
    tok = m.tokenizer
    if stop_tokens is None:
        eos = getattr(tok, "eos_token_id", None)
        stop_tokens = () if eos is None else (eos,)
    pad = getattr(tok, "pad_token_id", None)
    pad = pad if pad is not None else (stop_tokens[0] if stop_tokens else 0)
    opts: dict[str, Any] = dict(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        stop=set(int(s) for s in stop_tokens),
        pad=int(pad),
        return_logits=return_logits,
    )
    gen = torch.Generator(device=m.device).manual_seed(seed) if do_sample else None
    kind = cache_kind(m)
    m.eval()
    with torch.no_grad():
        if (
            kind == "none" and len({len(r) for r in rows}) > 1
        ):  # no attention mask: one row at a time
            return _merge(
                [_run(m, [r], capture, edits, opts, gen, kind, False) for r in rows], opts["pad"], m
            )
        return _run(m, rows, capture, edits, opts, gen, kind, use_cache and kind != "none")


def _bind(fn: EditFn, state: dict[str, Any]) -> EditFn:
    """``fn`` as a one-argument edit; a ``positions``-taking ``fn`` gets the current step's."""
    if not takes_positions(fn):
        return fn
    return lambda act: fn(act, positions=state["positions"])


def _run(
    m: Model,
    rows: list[list[int]],
    capture: list[str],
    edits: dict[str, EditFn],
    opts: dict[str, Any],
    gen: torch.Generator | None,
    kind: str,
    cached: bool,
) -> Generation:
    dev, pad = m.device, opts["pad"]
    B, P = len(rows), max(len(r) for r in rows)
    ids = torch.full((B, P), pad, dtype=torch.long, device=dev)
    mask = torch.zeros(B, P, dtype=torch.long, device=dev)
    for i, r in enumerate(rows):
        ids[i, P - len(r) :] = torch.tensor(r, device=dev)
        mask[i, P - len(r) :] = 1
    plen = mask.sum(1)
    absolute = (mask.cumsum(-1) - 1).masked_fill(mask == 0, -1)
    state: dict[str, Any] = {}
    bound = {name: _bind(fn, state) for name, fn in edits.items()}
    if kind == "hf":
        step: Any = HFStep(m, cached)
    elif kind == "native":
        step = NativeStep(m, cached)
    else:
        step = TraceStep(m, capture, bound)
    steps: dict[str, list[torch.Tensor]] = {n: [] for n in capture}
    chosen, logps, kept = [], [], []
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    n_new = torch.zeros(B, dtype=torch.long, device=dev)
    store: dict[str, Any] = {}
    with ExitStack() as stack:
        stack.enter_context(step.context())
        if kind != "none":
            stack.enter_context(m.hooked(capture, bound, store=store))
        for t in range(opts["max_new_tokens"]):
            S = ids.shape[1] if (t == 0 or not cached) else 1
            state["positions"] = Positions(absolute[:, -S:], plen, t)
            pos = absolute[:, -S:].masked_fill(absolute[:, -S:] < 0, 1)  # pads: as HF generate
            logits = step(ids[:, -S:], mask, pos).float()
            got = step.acts if kind == "none" else store
            new_cols = S if t == 0 else 1
            for n in capture:
                steps[n].append(_last_positions(n, got.pop(n), new_cols))
            nxt = choose(
                logits,
                do_sample=opts["do_sample"],
                temperature=opts["temperature"],
                top_k=opts["top_k"],
                top_p=opts["top_p"],
                generator=gen,
            )
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            logps.append(logits.log_softmax(-1).gather(-1, nxt[:, None])[:, 0])
            if opts["return_logits"]:
                kept.append(logits)
            chosen.append(nxt)
            n_new = n_new + (~done).long()
            done = done | torch.tensor([int(x) in opts["stop"] for x in nxt.tolist()], device=dev)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            absolute = torch.cat([absolute, absolute[:, -1:] + 1], 1)
            if bool(done.all()):
                break
    new = torch.stack(chosen, 1)
    return Generation(
        tokens=ids,
        prompt_tokens=ids[:, :P],
        new_tokens=new,
        prompt_len=plen,
        token_logprobs=torch.stack(logps, 1),
        texts=_texts(m, new, opts["stop"]),
        finished=done,
        n_new=n_new,
        steps=steps,
        logits=torch.stack(kept, 1) if kept else None,
        cache=step.kind if cached else "none",
        pad_id=pad,
    )


def _last_positions(name: str, act: torch.Tensor, n: int) -> torch.Tensor:
    """The last ``n`` positions of a captured activation (query dim 2 for patterns); a value
    that is not a tensor (a module's tuple output) is kept whole."""
    if not isinstance(act, torch.Tensor):
        return act
    d = 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1
    return act.narrow(d, act.shape[d] - n, n)


def _texts(m: Model, new: torch.Tensor, stop: set[int]) -> list[str]:
    if m.tokenizer is None:
        return []
    out = []
    for row in new.tolist():
        cut = next((i for i, x in enumerate(row) if x in stop), len(row))
        out.append(m.tokenizer.decode(row[:cut], skip_special_tokens=True))
    return out


def _merge(parts: list[Generation], pad: int, m: Model) -> Generation:
    """One :class:`Generation` from one-row generations: prompts left-padded to the longest,
    new tokens right-padded to the longest run, step-0 captures left-padded with zeros."""
    P = max(g.prompt_tokens.shape[1] for g in parts)
    T = max(g.new_tokens.shape[1] for g in parts)

    def left(x: torch.Tensor, width: int, value: float, dim: int = 1) -> torch.Tensor:
        shape = list(x.shape)
        shape[dim] = width - x.shape[dim]
        return torch.cat([torch.full(shape, value, dtype=x.dtype, device=x.device), x], dim)

    def right(x: torch.Tensor, width: int, value: float) -> torch.Tensor:
        shape = list(x.shape)
        shape[1] = width - x.shape[1]
        return torch.cat([x, torch.full(shape, value, dtype=x.dtype, device=x.device)], 1)

    prompt = torch.cat([left(g.prompt_tokens, P, pad) for g in parts])
    new = torch.cat([right(g.new_tokens, T, pad) for g in parts])
    steps = {}
    for n in parts[0].steps:
        d = 2 if n.endswith(("hook_pattern", "hook_attn_scores")) else 1
        first = torch.cat([left(g.steps[n][0], P, 0.0, d) for g in parts])
        rest = [
            torch.cat([g.steps[n][t] for g in parts])
            for t in range(1, min(len(g.steps[n]) for g in parts))
        ]
        steps[n] = [first, *rest]
    logits = None
    if all(g.logits is not None for g in parts):
        logits = torch.cat(
            [right(g.logits, T, float("nan")) for g in parts if g.logits is not None]
        )
    return Generation(
        tokens=torch.cat([prompt, new], 1),
        prompt_tokens=prompt,
        new_tokens=new,
        prompt_len=torch.cat([g.prompt_len for g in parts]),
        token_logprobs=torch.cat([right(g.token_logprobs, T, float("nan")) for g in parts]),
        texts=[t for g in parts for t in g.texts],
        finished=torch.cat([g.finished for g in parts]),
        n_new=torch.cat([g.n_new for g in parts]),
        steps=steps,
        logits=logits,
        cache="none",
        pad_id=pad,
    )


__all__ = [
    "generate",
    "Generation",
    "Positions",
    "only_prompt",
    "only_new",
    "from_position",
    "cache_kind",
    "prompt_ids",
    "choose",
    "hf_model",
    "cache_arg",
    "hf_cache_kwargs",
    "NativeKV",
]
