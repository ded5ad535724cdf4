"""Steering: ActAdd topic steering, CAA behaviour steering and SAE-latent steering.

On one causal LM (a zoo code LM for the quick presets, SmolLM2-135M-Instruct for ``real``):

- **ActAdd** (Turner et al. 2023): the difference of a topic prompt's and a neutral prompt's
  activations at one layer is added, times a coefficient, to the first positions of neutral
  prompts; completions are generated greedily. Topic relevance is the mean log-probability,
  over generated positions, of the topic's words (first tokens). A random direction of equal
  norm per position is the control. Off-topic held-out loss is measured under the same edit.
- **CAA** (Rimsky et al. 2024): the mean difference of the last-token activations of A/B
  answers that show a behaviour and answers that do not (:func:`interp.collect`), added at
  every position with coefficients ``-c, 0, +c``; the probability of the behaviour-matching
  letter is read on held-out questions.
- **SAE latent**: an SAE trained here on the layer's activations; a frequent latent's decoder
  row is added while generating, and the probability of the tokens it promotes (its row read
  through the unembedding) is compared with the unsteered generation.

Sanity criteria: coefficient 0 is the unsteered generation token for token; generation with
the key/value cache equals the recompute under ActAdd's position-indexed edit; greedy
generation equals a reference (the Hugging Face model's own ``generate``, or a plain argmax
loop over full forwards for zoo models); an SAE latent clamped to its own value changes nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated

import annotated_types as at
import numpy as np
import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict, Field

import interp
from interp.analyses import register
from interp.analyses.model_report import heldout_tokens
from interp.data.steering import ABItem, Topic, ab_items, split_ab, topic
from interp.fields import Count, Device, ModelName, NonNegInt, Seed
from interp.methods import steering as S
from interp.methods.lens import unembed
from interp.plotting import steering as plots
from interp.results import Result
from interp.sae.model import SAEConfig
from interp.sae.train import SAETrainConfig, train_sae
from interp.tracing.collect import collect
from interp.tracing.generate import Generation, generate, hf_cache_kwargs, hf_model, prompt_ids
from interp.tracing.model import Model
from interp.utils import seed_everything

log = logging.getLogger(__name__)
Coef = Annotated[float, at.Ge(-1e4), at.Le(1e4)]


class Config(BaseModel):
    """Settings of the steering analysis."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "zoo:code-lm"  # n_ctx 128: room for the A/B questions
    layer: NonNegInt | None = None  # ActAdd's and the SAE's layer; None: n_layers // 3
    caa_layer: NonNegInt | None = None  # None: the same as layer
    topic: str = "code"  # interp.data.steering.TOPICS
    # small: zoo:code-lm and SmolLM2-135M stop writing text near 0.5 (docs/analyses/steering.md)
    coefs: list[Coef] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4])
    n_prompts: Count = 4
    max_new_tokens: Count = 12
    n_heldout: Count = 6
    behaviour: str = "optimism"  # interp.data.steering.BEHAVIOURS
    n_train_pairs: Count = 12
    caa_coef: Annotated[float, at.Gt(0), at.Le(1e4)] = 2.0
    sae_tokens: Count = 1500  # activations the SAE is trained on
    sae_width: Count = 4  # d_sae = sae_width * d_model
    sae_steps: Count = 300
    sae_coef: Coef = 8.0
    n_promoted: Count = 10
    chat: bool = False  # wrap prompts in the tokenizer's chat template
    device: Device = "auto"
    seed: Seed = 0


@dataclass(frozen=True)
class Sweep:
    """Per coefficient: topic relevance (mean log-prob of the topic's words over generated
    positions), the share of generated tokens that are topic words, and the completions."""

    relevance: Float[np.ndarray, " coefs"]
    share: Float[np.ndarray, " coefs"]
    texts: list[list[str]]


@dataclass(frozen=True)
class ActAdd:
    """ActAdd's sweep, the random direction's sweep, the off-topic held-out loss per
    coefficient, and ``steer(coef)``, the steering at any coefficient."""

    steer: Callable[[float], S.Steering]
    sweep: Sweep
    random: Sweep
    losses: Float[np.ndarray, " coefs"]


@dataclass(frozen=True)
class Checks:
    """The generation identities: tokens that differ (coefficient 0 vs none, cache vs
    recompute, greedy vs the reference) and the cache's largest log-prob gap."""

    coef0_token_diffs: int
    cache_token_diffs: int
    cache_logprob_gap: float
    reference_token_diffs: int
    reference: str


@dataclass(frozen=True)
class CAA:
    """P(matching letter) on held-out questions at ``-c``, 0 and ``+c``, and the vector."""

    minus: Float[np.ndarray, " questions"]
    zero: Float[np.ndarray, " questions"]
    plus: Float[np.ndarray, " questions"]
    vector_norm: float
    hook: str
    vector: Float[np.ndarray, ...]

    def means(self) -> dict[str, float]:
        """Mean P(matching) at each sign (the saved ``caa`` metric)."""
        return {k: float(getattr(self, k).mean()) for k in ("minus", "zero", "plus")}


@dataclass(frozen=True)
class SAELatent:
    """The SAE's steered latent, its training figures, its promoted tokens' log-prob without
    and with steering, and the clamp-to-own-value identity (token diffs, max log-prob gap)."""

    latent: int
    frequency: float
    fvu: float
    l0: float
    promoted: list[str]
    base_logprob: float
    steered_logprob: float
    clamp_token_diffs: int
    clamp_logprob_gap: float
    steered_texts: list[str]

    def summary(self) -> dict:
        """Everything but the texts (the saved ``sae`` metric)."""
        return {k: v for k, v in asdict(self).items() if k != "steered_texts"}


# ---------------------------------------------------------------- measuring parts
def word_ids(m: Model, words: list[str]) -> list[int]:
    """First token of each word, with and without a leading space (deduplicated)."""
    ids = {
        m.tokenizer.encode(w, add_special_tokens=False)[0]
        for word in words
        for w in (word, " " + word)
        if m.tokenizer.encode(w, add_special_tokens=False)
    }
    return sorted(ids)


def set_logprob(logits: torch.Tensor, ids: list[int], live: torch.Tensor) -> float:
    """Mean over generated positions (``live`` ``[B, T]``) of ``log sum_{w in ids} p(w)``."""
    lp = logits.float().log_softmax(-1)[..., ids].logsumexp(-1)  # [B, T]
    return float(lp[live].mean())


def live_positions(g: Generation) -> torch.Tensor:
    """``[B, T]`` True up to and including each row's stop token (the padding after it False)."""
    T = g.new_tokens.shape[1]
    return torch.arange(T, device=g.n_new.device)[None] < g.n_new[:, None]


def topic_sweep(
    m: Model,
    steer_of: Callable[[float], S.Steering],
    prompts: list[str],
    ids: list[int],
    coefs: list[float],
    config: Config,
) -> Sweep:
    """Relevance (topic log-prob), topic-word share and texts at each coefficient."""
    rel, share, texts = [], [], []
    for c in coefs:
        g = steer_of(c).generate(
            m, prompts, config.max_new_tokens, return_logits=True, chat=config.chat
        )
        live = live_positions(g)
        rel.append(set_logprob(g.logits, ids, live))
        topical = torch.isin(g.new_tokens, torch.tensor(ids, device=g.new_tokens.device))
        share.append(float(topical[live].float().mean()))
        texts.append(g.texts)
    return Sweep(relevance=np.array(rel), share=np.array(share), texts=texts)


def heldout_loss(m: Model, steering: S.Steering, texts: list[str]) -> float:
    """Mean next-token loss on ``texts`` (one at a time, no padding) under ``steering``."""
    total, n = 0.0, 0
    for t in texts:
        x = m.to_tokens(t)
        out, _ = steering.trace(m, x)
        lp = out[0, :-1].float().log_softmax(-1).gather(-1, x[0, 1:, None].to(out.device))
        total, n = total - float(lp.sum()), n + x.shape[1] - 1
    return total / n


def random_like(delta: torch.Tensor, seed: int) -> torch.Tensor:
    """A Gaussian ``[n, d]`` with each row's norm equal to ``delta``'s."""
    r = torch.randn(delta.shape, generator=torch.Generator().manual_seed(seed))
    return r / r.norm(dim=-1, keepdim=True) * delta.norm(dim=-1, keepdim=True)


def letter_probs(
    m: Model, steering: S.Steering, items: list[ABItem], config: Config
) -> Float[np.ndarray, " questions"]:
    """P(matching letter) / (P(A) + P(B)) at the answer position of each item."""
    a, b = (m.tokenizer.encode(x, add_special_tokens=False)[0] for x in ("A", "B"))
    g = steering.generate(
        m, [it.prompt for it in items], 1, return_logits=True, stop_tokens=(), chat=config.chat
    )
    p = g.logits[:, 0].float().softmax(-1)
    pa, pb = p[:, a], p[:, b]
    match = torch.tensor([it.matching == "A" for it in items], device=p.device)
    return (torch.where(match, pa, pb) / (pa + pb)).cpu().numpy()


def caa_part(m: Model, hook_layer: int, config: Config) -> CAA:
    """The CAA vector from training pairs and P(matching) on held-out questions at -c, 0, +c."""
    train, test = split_ab(ab_items(config.behaviour, config.seed), config.n_train_pairs)
    pairs = [(it.prompt + it.matching, it.prompt + it.other) for it in train]
    base = S.build(m, "caa", layer=hook_layer, coef=0.0, pairs=pairs)
    probs = {}
    for name, c in (("minus", -config.caa_coef), ("zero", 0.0), ("plus", config.caa_coef)):
        st = S.build(m, "caa", layer=hook_layer, coef=c, vector=base.vector, where="all")
        probs[name] = letter_probs(m, st, test, config)
    return CAA(
        **probs,
        vector_norm=float(base.vector.norm()),
        hook=base.info["hook"],
        vector=base.vector.cpu().numpy(),
    )


def sae_part(
    m: Model, layer: int, prompts: list[str], base: Generation, config: Config
) -> SAELatent:
    """Train an SAE at the layer's ``resid_pre``, steer by a frequent latent's decoder row and
    compare the probability of its promoted tokens with the unsteered generation ``base``; also
    the clamp-to-own-value identity."""
    hook = m.hook("resid_pre", layer)
    seq = 64
    toks = heldout_tokens(m, "stdlib", math.ceil(config.sae_tokens / (seq - 1)), seq, config.seed)
    acts = collect(m, toks, hooks=[hook], batch_size=8)[hook][:, 1:]
    acts = acts.reshape(-1, m.cfg.d_model).float()
    sae_config = SAEConfig(
        d_in=m.cfg.d_model,
        d_sae=config.sae_width * m.cfg.d_model,
        hook_name=hook,
        init_seed=config.seed,
    )
    sae, rep = train_sae(acts, sae_config, SAETrainConfig(steps=config.sae_steps), hook=hook)
    with torch.no_grad():
        codes = sae.encode(acts)
    freq = (codes > 0).float().mean(0)
    score = torch.where(
        (freq > 0.01) & (freq < 0.2), codes.max(0).values * freq, torch.zeros_like(freq)
    )
    latent = int(score.argmax()) if bool((score > 0).any()) else int(freq.argmax())
    row = sae.folded()["W_dec"][latent].detach()
    read = unembed(m, row.to(m.device)[None, None].to(m.dtype))[0, 0]
    ids = read.float().topk(config.n_promoted).indices.tolist()
    steered = S.build(m, "sae_add", coef=config.sae_coef, sae=sae, latent=latent).generate(
        m, prompts, config.max_new_tokens, return_logits=True, chat=config.chat
    )

    def own(a: torch.Tensor) -> torch.Tensor:
        out = a.clone()
        out[..., latent] = a[..., latent]
        return out

    clamped = S.Steering(
        "sae_clamp", {f"{hook}.hook_sae_acts_post": own}, saes={hook: sae}
    ).generate(m, prompts, config.max_new_tokens, return_logits=True, chat=config.chat)
    return SAELatent(
        latent=latent,
        frequency=float(freq[latent]),
        fvu=float(rep["fvu"]),
        l0=float(rep["l0"]),
        promoted=[m.tokenizer.decode([i]) for i in ids],
        base_logprob=set_logprob(base.logits, ids, live_positions(base)),
        steered_logprob=set_logprob(steered.logits, ids, live_positions(steered)),
        clamp_token_diffs=int((clamped.new_tokens != base.new_tokens).sum()),
        clamp_logprob_gap=float((clamped.token_logprobs - base.token_logprobs).abs().max()),
        steered_texts=steered.texts,
    )


def reference_gap(m: Model, prompts: list[str], g: Generation, config: Config) -> int:
    """Tokens where greedy ``g`` differs from a reference: the Hugging Face model's own
    ``generate`` (bridge cache kwargs fixed), or for other models an argmax loop over full
    forwards of each prompt alone."""
    rows = prompt_ids(m, prompts, chat=config.chat)
    T = g.new_tokens.shape[1]
    diffs = 0
    hf = hf_model(m)
    for i, r in enumerate(rows):
        x = torch.tensor([r], device=m.device)
        with torch.no_grad():
            if hf is not None:
                with hf_cache_kwargs(m):
                    ref = hf.generate(
                        x,
                        attention_mask=torch.ones_like(x),
                        max_new_tokens=T,
                        do_sample=False,
                        pad_token_id=g.pad_id,
                        eos_token_id=None,
                    )[0, len(r) :]
            else:
                for _ in range(T):
                    x = torch.cat([x, m.module(x)[:, -1:].argmax(-1)], 1)
                ref = x[0, len(r) :]
        n = int(g.n_new[i])
        diffs += int((ref[:n].cpu() != g.new_tokens[i, :n].cpu()).sum())
    return diffs


def actadd_part(
    m: Model, layer: int, t: Topic, prompts: list[str], coefs: list[float], config: Config
) -> ActAdd:
    """ActAdd's sweep, the random control's sweep and the off-topic loss per coefficient."""

    def steer(c: float) -> S.Steering:
        return S.build(m, "actadd", layer=layer, coef=c, plus=t.plus, minus=t.minus)

    rand = random_like(steer(1.0).vector, config.seed)
    hook = m.hook("resid_pre", layer)

    def control(c: float) -> S.Steering:
        return S.Steering("random", {hook: S.add_at_start(rand, c)}, rand)

    ids = word_ids(m, t.words)
    return ActAdd(
        steer=steer,
        sweep=topic_sweep(m, steer, prompts, ids, coefs, config),
        random=topic_sweep(m, control, prompts, ids, coefs, config),
        losses=np.array([heldout_loss(m, steer(c), t.heldout[: config.n_heldout]) for c in coefs]),
    )


def sanity_checks(
    m: Model,
    steer: Callable[[float], S.Steering],
    prompts: list[str],
    base: Generation,
    coefs: list[float],
    config: Config,
) -> Checks:
    """Coefficient 0 against no edit, the cache against the recompute (largest coefficient),
    greedy against the reference generation."""
    n, chat = config.max_new_tokens, config.chat
    zero = steer(0.0).generate(m, prompts, n, chat=chat)
    top = steer(max(coefs))
    cached = top.generate(m, prompts, n, chat=chat)
    recomputed = top.generate(m, prompts, n, chat=chat, use_cache=False)
    return Checks(
        coef0_token_diffs=int((zero.new_tokens != base.new_tokens).sum()),
        cache_token_diffs=int((cached.new_tokens != recomputed.new_tokens).sum()),
        cache_logprob_gap=float((cached.token_logprobs - recomputed.token_logprobs).abs().max()),
        reference_token_diffs=reference_gap(m, prompts, base, config),
        reference="hf generate" if hf_model(m) is not None else "argmax loop",
    )


def load_lm(config: Config) -> Model:
    """The configured causal language model (a transformer with a tokenizer)."""
    m = interp.load_model(config.model, device=config.device)
    if m.kind != "transformer" or not m.n_layers or m.tokenizer is None:
        raise ValueError(
            f"steering needs a transformer language model with a tokenizer; {config.model} is a "
            f"{m.kind}{'' if m.tokenizer is not None else ' without tokenizer'}"
        )
    if getattr(m.cfg, "attention_dir", "causal") != "causal":
        raise ValueError(
            f"steering generates text: {config.model} is a bidirectional (masked) model"
        )
    for name in ("layer", "caa_layer"):
        value = getattr(config, name)
        if value is not None and value >= m.n_layers:
            raise ValueError(f"{name}={value} but {m.model_id} has {m.n_layers} layers")
    return m


@register(
    "steering",
    Config,
    title="Steering: ActAdd, CAA and SAE latents",
    paper="Turner et al. 2023 (arXiv 2308.10248); Rimsky et al. 2024 (arXiv 2312.06681)",
    figure_order=("topic_relevance", "heldout_loss", "caa", "sae_latent", "examples"),
)
def run(config: Config) -> Result:
    """ActAdd topic steering, CAA behaviour steering and SAE-latent steering, with sanity checks."""
    seed_everything(config.seed)
    m = load_lm(config)
    layer = config.layer if config.layer is not None else m.n_layers // 3
    t = topic(config.topic)
    prompts = t.prompts[: config.n_prompts]
    coefs = sorted(set(config.coefs) | {0.0})
    log.info("ActAdd at %s, coefficients %s", m.hook("resid_pre", layer), coefs)
    act = actadd_part(m, layer, t, prompts, coefs, config)
    base = generate(m, prompts, config.max_new_tokens, return_logits=True, chat=config.chat)
    checks = sanity_checks(m, act.steer, prompts, base, coefs, config)
    caa = caa_part(m, config.caa_layer if config.caa_layer is not None else layer, config)
    sae = sae_part(m, layer, prompts, base, config)
    return report(config, m, layer, coefs, prompts, act, base, checks, caa, sae)


# ---------------------------------------------------------------- the result
def doubling_coef(coefs: list[float], relevance: np.ndarray) -> int | None:
    """Index of the smallest coefficient whose topic probability is at least twice the
    unsteered one (log-probability up by ln 2), or None."""
    z = coefs.index(0.0)
    for i, c in enumerate(coefs):
        if c > 0 and relevance[i] - relevance[z] >= math.log(2):
            return i
    return None


def claims(result: Result, coefs: list[float], act: ActAdd, caa: CAA, sae: SAELatent) -> None:
    """The papers' findings at our scale, each with its number."""
    sweep, rsweep, losses = act.sweep, act.random, act.losses
    pos = [i for i, c in enumerate(coefs) if c >= 0]
    rel = sweep.relevance[pos]
    gain = float(rel[-1] - rel[0])
    result.add_criterion(
        "topic_relevance_rises_with_coef",
        float(np.diff(rel).min()),
        ">",
        0.0,
        kind="claim",
        description="smallest rise of topic log-probability between consecutive ActAdd "
        "coefficients >= 0 (nats; > 0 means monotone)",
    )
    rgain = float(rsweep.relevance[pos][-1] - rsweep.relevance[pos][0])
    result.add_criterion(
        "random_direction_does_not_steer",
        rgain / gain if gain > 0 else float("nan"),
        "<",
        0.25,
        kind="claim",
        description="topic log-prob gain of a random direction of equal norm, "
        "as a fraction of ActAdd's gain at the largest coefficient",
    )
    k = doubling_coef(coefs, sweep.relevance)
    z = coefs.index(0.0)
    rise = float((losses[k] - losses[z]) / losses[z]) if k is not None else float("nan")
    result.add_criterion(
        "offtopic_loss_rises_little",
        rise,
        "<=",
        0.10,
        kind="claim",
        description="relative rise of off-topic held-out loss at the smallest coefficient that "
        "doubles the topic probability (NaN: no coefficient doubled it)",
    )
    p_minus, p0, p_plus = caa.means().values()
    result.add_criterion(
        "caa_moves_with_sign",
        min(p_plus - p0, p0 - p_minus),
        ">",
        0.0,
        kind="claim",
        description="min(P+c - P0, P0 - P-c) of the behaviour-matching answer on held-out A/B "
        "questions (> 0: +c raises it, -c lowers it)",
    )
    result.add_criterion(
        "sae_latent_promotes_its_tokens",
        sae.steered_logprob - sae.base_logprob,
        ">",
        0.0,
        kind="claim",
        description="log-prob of the latent's promoted tokens in generations, "
        "steered minus unsteered (nats)",
    )


def sanity(result: Result, checks: Checks, sae: SAELatent) -> None:
    """The identities: each must hold, or the generation or steering code is wrong."""
    rows = [
        ("coef0_equals_unsteered", checks.coef0_token_diffs, "==", 0,
         "tokens where ActAdd with coefficient 0 differs from the unsteered generation"),
        ("cache_equals_recompute", checks.cache_token_diffs, "==", 0,
         "tokens where generation with the key/value cache differs from the full recompute under "
         "ActAdd's position-indexed edit (largest coefficient)"),
        ("greedy_equals_reference", checks.reference_token_diffs, "==", 0,
         f"tokens where greedy generation differs from the reference ({checks.reference}), "
         "each prompt alone"),
        ("sae_clamp_own_value_is_identity", sae.clamp_logprob_gap, "<=", 1e-4,
         "max |token log-prob change| when an SAE latent is clamped to its own value (spliced, "
         f"error term kept; {sae.clamp_token_diffs} tokens differ)"),
    ]  # fmt: skip
    for name, value, op, threshold, description in rows:
        result.add_criterion(name, value, op, threshold, kind="sanity", description=description)


def report(
    config: Config,
    m: Model,
    layer: int,
    coefs: list[float],
    prompts: list[str],
    act: ActAdd,
    base: Generation,
    checks: Checks,
    caa: CAA,
    sae: SAELatent,
) -> Result:
    """Metrics, criteria, arrays and figures."""
    sweep, rsweep, losses = act.sweep, act.random, act.losses
    result = Result("steering")
    top = len(coefs) - 1
    examples = [
        {
            "prompt": p,
            "unsteered": base.texts[i],
            f"actadd x{coefs[top]:g}": sweep.texts[top][i],
            f"sae latent {sae.latent} x{config.sae_coef:g}": sae.steered_texts[i],
        }
        for i, p in enumerate(prompts)
    ]
    result.metrics.update(
        {
            "model": m.model_id,
            "layer": layer,
            "hook": m.hook("resid_pre", layer),
            "topic": config.topic,
            "coefs": coefs,
            "topic_relevance": sweep.relevance.tolist(),
            "topic_share": sweep.share.tolist(),
            "random_relevance": rsweep.relevance.tolist(),
            "heldout_loss": losses.tolist(),
            "caa": caa.means(),
            "caa_vector_norm": caa.vector_norm,
            "caa_hook": caa.hook,
            "sae": sae.summary(),
            "examples": examples,
            "checks": asdict(checks),
        }
    )
    sanity(result, checks, sae)
    claims(result, coefs, act, caa, sae)
    result.arrays.update(
        {
            "coefs": np.array(coefs),
            "topic_relevance": sweep.relevance,
            "random_relevance": rsweep.relevance,
            "heldout_loss": losses,
            "caa_minus": caa.minus,
            "caa_zero": caa.zero,
            "caa_plus": caa.plus,
            "caa_vector": caa.vector,
        }
    )
    result.figures.update(
        {
            "topic_relevance": plots.relevance_figure(
                coefs, sweep.relevance, rsweep.relevance, config.topic
            ),
            "heldout_loss": plots.loss_figure(coefs, losses),
            "caa": plots.caa_figure(
                caa.minus, caa.zero, caa.plus, config.caa_coef, config.behaviour
            ),
            "sae_latent": plots.sae_figure(
                sae.base_logprob, sae.steered_logprob, sae.promoted, sae.latent
            ),
            "examples": plots.examples_table(examples),
        }
    )
    return result
