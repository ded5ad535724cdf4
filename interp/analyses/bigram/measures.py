"""What the bigram analysis measures on a (masked) model: held-out windows of its corpus,
per-token surprisals, Pearson r and the ridge maps of the residual stream."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from scipy.stats import pearsonr

from interp.analyses.bigram.config import Config
from interp.analyses.bigram.types import AppliesMask, CorpusChoice, CorpusStreams, ResidualMap
from interp.data.corpus import load_corpus
from interp.methods.lens import residual_stream
from interp.methods.masks import MaskLogits, logits_of, masked, native
from interp.methods.probes import fit_ridge
from interp.models import zoo
from interp.models.recipes.code_lm import tokenize_corpus
from interp.tracing.readout import unembed

if TYPE_CHECKING:
    from collections.abc import Callable

    from interp.tracing.model import Model

DEFAULT_SOURCE = CorpusChoice(corpus="stdlib", max_chars=400_000, seed=0)


def corpus_streams(config: Config, m: Model) -> CorpusStreams:
    """Train and held-out token streams of the model's corpus split (BOS before each file): a zoo
    model's recipe corpus unless the config names another."""
    src = DEFAULT_SOURCE.as_json()
    if config.model.startswith("zoo:"):
        rc = zoo.get(config.model[4:]).config
        src.update({k: getattr(rc, k) for k in src if hasattr(rc, k)})
    for k, v in (
        ("corpus", config.corpus),
        ("max_chars", config.max_chars),
        ("seed", config.corpus_seed),
    ):
        if v is not None:
            src[k] = v
    corpus = load_corpus(src["corpus"], max_chars=src["max_chars"], seed=src["seed"])
    bos = m.tokenizer.bos_token_id
    return CorpusStreams(
        tokenize_corpus(corpus.train, m.tokenizer, bos),
        tokenize_corpus(corpus.heldout, m.tokenizer, bos),
        CorpusChoice(**src),
    )


def windows(stream: np.ndarray, n: int, seq_len: int, seed: int) -> Int[torch.Tensor, "n seq"]:
    """``[n, seq_len]`` random windows of ``stream`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    hi = len(stream) - seq_len
    if hi <= 0:
        raise ValueError(f"stream of {len(stream)} tokens is shorter than seq_len={seq_len}")
    starts = torch.randint(0, hi, (n,), generator=g).tolist()
    data = torch.from_numpy(stream.astype(np.int64))
    return torch.stack([data[s : s + seq_len] for s in starts])


@torch.no_grad()
def surprisals(
    m: Model,
    tokens: Int[torch.Tensor, "n seq"],
    mask: AppliesMask | None = None,
    complement: bool = False,
    batch_size: int = 16,
) -> Float[np.ndarray, "n seq_minus_1"]:
    """``[n, pos-1]`` next-token surprisal (nats) of the model, under ``mask`` if given."""
    root = native(m)
    out = []
    ctx = mask.apply(m, complement=complement) if mask is not None else contextlib.nullcontext()
    with ctx:
        for i in range(0, len(tokens), batch_size):
            x = tokens[i : i + batch_size].to(m.device)
            logp = F.log_softmax(logits_of(root(x)).float(), dim=-1)
            out.append(-logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1).cpu().numpy())
    return np.concatenate(out)


def pearson_finite(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r (``scipy.stats.pearsonr``) over entries where both are finite; NaN with fewer
    than 3 such entries or a constant side."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(pearsonr(a[ok], b[ok]).statistic)


def ridge_fit(
    X: Float[torch.Tensor, "n d_in"], Y: Float[torch.Tensor, "n d_out"], alpha: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Ridge map with intercept (:func:`interp.methods.probes.fit_ridge`: ``alpha`` is relative to
    the mean eigenvalue of the centred ``X^T X``); returns ``predict(X') -> Y'`` (float32
    tensors)."""
    model = fit_ridge(X, Y, alpha)
    return lambda Z: torch.from_numpy(model.predict(Z.detach().cpu().double().numpy())).float()


@torch.no_grad()
def capture_resid(
    m: Model, tokens: Int[torch.Tensor, "n seq"], mask: AppliesMask | None = None
) -> tuple[list[Float[torch.Tensor, "n seq d_model"]], Float[torch.Tensor, "n seq vocab"]]:
    """Every residual stream ``R x [n, pos, d_model]`` and the logits ``[n, pos, vocab]`` of
    ``tokens`` (float32, CPU), under ``mask`` if given."""
    names = m.resid_names()
    acts: list[list[torch.Tensor]] = [[] for _ in names]
    logits = []
    with mask.apply(m) if mask is not None else contextlib.nullcontext():
        for i in range(0, len(tokens), 16):
            stream = residual_stream(m, tokens[i : i + 16])
            logits.append(stream.output.float().cpu())
            for j, r in enumerate(stream.resid):
                acts[j].append(r.float().cpu())
    return [torch.cat(a) for a in acts], torch.cat(logits)


@torch.no_grad()
def residual_maps(
    m: Model,
    tokens: Int[torch.Tensor, "n seq"],
    mask: AppliesMask | None = None,
    *,
    alpha: float,
    k: int,
    seed: int,
) -> ResidualMap:
    """Per residual stream (embedding, then after each layer): recall@k of the current token
    from a ridge map to the embedding space, and Pearson r between the real surprisals and
    those read from a ridge map to the final residual stream through the logit lens (masks never
    touch the final norm or the unembedding). Maps are fitted on half of the sequences and
    scored on the other half."""
    resid, logits = capture_resid(m, tokens, mask)
    W_E = m.module.W_E.detach().float().cpu()  # [vocab, d_model]
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(tokens), generator=g)
    tr, te = order[: len(tokens) // 2], order[len(tokens) // 2 :]
    tok = tokens[:, 1:-1]  # skip BOS-like position 0 and the last (no next token)
    nxt = tokens[:, 2:]
    real = (
        -F.log_softmax(logits[:, 1:-1][te], -1).gather(-1, nxt[te, :, None]).squeeze(-1).reshape(-1)
    )
    final = resid[-1][:, 1:-1]  # [n, pos, d]
    E_unit = F.normalize(W_E, dim=-1)
    recall, final_r = np.zeros(len(resid)), np.zeros(len(resid))
    d = final.shape[-1]
    for j, acts in enumerate(resid):
        X = acts[:, 1:-1]  # [n, pos, d]
        # current token: map to its input embedding, rank all tokens by cosine
        to_tok = ridge_fit(X[tr].reshape(-1, d), W_E[tok[tr].reshape(-1)], alpha)
        sims = F.normalize(to_tok(X[te].reshape(-1, d)), dim=-1) @ E_unit.T  # [N, vocab]
        true = sims.gather(-1, tok[te].reshape(-1, 1))
        recall[j] = float(((sims > true).sum(-1) < k).float().mean())
        # next token: map to the final residual, read it out through the logit lens
        to_fin = ridge_fit(X[tr].reshape(-1, d), final[tr].reshape(-1, d), alpha)
        pred = to_fin(X[te].reshape(-1, d)).to(m.dtype).to(m.device)
        lp = F.log_softmax(unembed(m, pred[None])[0].float().cpu(), -1)
        s = -lp.gather(-1, nxt[te].reshape(-1, 1)).squeeze(-1)
        final_r[j] = pearson_finite(s.numpy(), real.numpy())
    return ResidualMap(recall=recall, final_r=final_r)


class SoftMask:
    """Adapter giving :class:`~interp.methods.masks.MaskLogits` the ``apply(model)`` of a
    :class:`~interp.methods.masks.Mask` (in the logits' current mode)."""

    def __init__(self, logits: MaskLogits):
        self.logits = logits

    def apply(self, m: Model, complement: bool = False) -> contextlib.AbstractContextManager[Any]:
        if complement:
            raise ValueError("a soft mask has no complement here")
        return masked(m, self.logits.sites, self.logits.mask)
