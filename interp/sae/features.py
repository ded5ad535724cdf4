"""Feature pages: what every latent of an SAE does on a stored activation set, in one streaming
pass.

For each latent ``i`` of ``sae`` at hook ``hook`` of an
:class:`~interp.tracing.store.ActivationStore`
collected with ``positions="all"`` (activations ``[N, T, d_in]``, tokens ``[N, T]``):

- ``density[i]``: the fraction of token positions where the latent is > 0;
- ``hist_counts[i]``: a histogram of its *positive* activations over fixed log10 bins
  (``hist_edges``, the same for every latent and every store, so one pass suffices and pages
  compare; values below or above the range fall into the first or last bin);
- the ``k`` top activating contexts: the item and position of each, and the token ids and this
  latent's activations over a window of ``context`` tokens either side (``2 * context + 1``
  tokens, the position in the middle; ``-1`` tokens and 0 activations pad past a sequence's
  ends; picks with activation 0 are empty: item ``-1``);
- logit effects: the vocabulary tokens its decoder direction promotes and suppresses through the
  model's unembedding (``W_dec[i] @ W_U``, the bias ``b_U`` removed; no final norm: the direct
  path).

The pass reads ``store.iter_shards(hook)`` shard by shard and encodes ``batch_size`` items at a
time; it keeps per-latent buffers of ``k`` picks and never concatenates the store (the token ids,
``d_in`` times smaller, are read whole). Merging a batch's own top ``k`` into the buffers gives
the top ``k`` of everything seen, so results do not depend on shard or batch boundaries.

    pages = feature_pages(sae, store, hook, model=m, k=10)
    result = pages.to_result()          # arrays "features_*", metrics["features"]
    pages = FeaturePages.from_result(interp.Result.load(run_dir))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ARRAY_PREFIX = (
    "features_"  # a result holds feature pages when it has these arrays and metrics["features"]
)
NO_MODEL_NOTE = "no model given: logit effects not computed (pass model= to feature_pages)"
_ARRAYS = (
    "density",
    "hist_edges",
    "hist_counts",
    "top_acts",
    "top_items",
    "top_pos",
    "ctx_tokens",
    "ctx_acts",
    "promoted",
    "promoted_values",
    "suppressed",
    "suppressed_values",
    "string_ids",
    "strings",
)


@dataclass
class FeaturePages:
    """Feature pages of ``d_sae`` latents (``k`` contexts of ``W = 2 * context + 1`` tokens
    each)."""

    hook: str
    n_tokens: int  # token positions read (N * T)
    context: int
    density: np.ndarray  # [d_sae] fraction of positions with activation > 0
    hist_edges: np.ndarray  # [n_bins + 1] log10-spaced activation bin edges
    hist_counts: np.ndarray  # [d_sae, n_bins] counts of positive activations
    top_acts: np.ndarray  # [d_sae, k] activation at the pick, descending (0: empty pick)
    top_items: np.ndarray  # [d_sae, k] item (sequence) index, -1 for an empty pick
    top_pos: np.ndarray  # [d_sae, k] position in the sequence, -1 for an empty pick
    ctx_tokens: np.ndarray  # [d_sae, k, W] token ids of the window (-1: outside the sequence)
    ctx_acts: np.ndarray  # [d_sae, k, W] this latent's activation at each token of the window
    promoted: (
        np.ndarray
    )  # [d_sae, n_logit] token ids, most promoted first ([d_sae, 0] without a model)
    promoted_values: np.ndarray  # [d_sae, n_logit] logit effect of a unit activation
    suppressed: np.ndarray  # [d_sae, n_logit] token ids, most suppressed first
    suppressed_values: np.ndarray  # [d_sae, n_logit]
    string_ids: (
        np.ndarray
    )  # [S] sorted token ids with a string (those in contexts and logit effects)
    strings: np.ndarray  # [S] their strings (empty without a tokenizer)
    note: str = ""

    @property
    def d_sae(self) -> int:
        return len(self.density)

    @property
    def k(self) -> int:
        return int(self.top_acts.shape[1])

    def token_str(self, token_id: int) -> str:
        """The token's string, or ``<id>`` when there is none (no tokenizer, or padding)."""
        j = int(np.searchsorted(self.string_ids, token_id))
        if j < len(self.string_ids) and self.string_ids[j] == token_id:
            return str(self.strings[j])
        return f"<{int(token_id)}>"

    def contexts(self, latent: int) -> list[dict[str, Any]]:
        """The non-empty top contexts of ``latent``: item, position, activation, tokens, strings,
        acts."""
        out = []
        for j in range(self.k):
            if self.top_items[latent, j] < 0:
                continue
            keep = self.ctx_tokens[latent, j] >= 0
            toks = self.ctx_tokens[latent, j][keep]
            out.append(
                {
                    "item": int(self.top_items[latent, j]),
                    "pos": int(self.top_pos[latent, j]),
                    "act": float(self.top_acts[latent, j]),
                    "tokens": toks.tolist(),
                    "strings": [self.token_str(t) for t in toks],
                    "acts": self.ctx_acts[latent, j][keep].tolist(),
                    "center": int(np.flatnonzero(keep).tolist().index(self.context)),
                }
            )
        return out

    def search(self, query: str, limit: int = 50) -> list[int]:
        """Latents matching ``query``: a latent id (``"12"``), else latents that promote a token
        whose string is ``query`` (stripped; case-insensitive when no exact match), most
        promoting first."""
        q = query.strip()
        if q.lstrip("-").isdigit():
            i = int(q)
            return [i] if 0 <= i < self.d_sae else []
        if not q or self.promoted.shape[1] == 0:
            return []
        stripped = np.array([str(s).strip() for s in self.strings])
        ids = self.string_ids[stripped == q]
        if len(ids) == 0:
            ids = self.string_ids[np.char.lower(stripped) == q.lower()]
        hit = np.isin(self.promoted, ids)  # [d_sae, n_logit]
        rows = np.flatnonzero(hit.any(1))
        # Order by the strongest effect on a matching token (a latent promoting it hardest first).
        best = np.where(hit, self.promoted_values, -np.inf).max(1)[rows]
        return [int(r) for r in rows[np.argsort(-best, kind="stable")][:limit]]

    # ------------------------------------------------------------ results
    def to_result(self, result: Any = None) -> Any:
        """Add the pages to ``result`` (an :class:`interp.Result`; a new ``"features"`` one when
        None) as arrays ``features_<field>`` and ``metrics["features"]``; returns the result."""
        from interp.results import Result

        result = result if result is not None else Result("features", {"hook": self.hook})
        for name in _ARRAYS:
            result.arrays[ARRAY_PREFIX + name] = np.asarray(getattr(self, name))
        result.metrics["features"] = {
            "hook": self.hook,
            "d_sae": self.d_sae,
            "k": self.k,
            "context": self.context,
            "n_tokens": self.n_tokens,
            "histogram": "log10 bins of positive activations (edges in arrays/features_hist_edges)",
            "n_logit_tokens": int(self.promoted.shape[1]),
            "note": self.note,
            "mean_density": float(self.density.mean()) if self.d_sae else 0.0,
            "dead_fraction": float((self.density == 0).mean()) if self.d_sae else 0.0,
        }
        return result

    @classmethod
    def from_result(cls, result: Any) -> FeaturePages:
        """The pages saved in ``result`` by :meth:`to_result`."""
        if not has_feature_pages(result):
            raise ValueError(
                f"result {getattr(result, 'analysis', '?')!r} holds no feature pages "
                f"(no metrics['features'] and {ARRAY_PREFIX}* arrays)"
            )
        meta = result.metrics["features"]
        arrays = {name: result.arrays[ARRAY_PREFIX + name] for name in _ARRAYS}
        return cls(
            hook=meta["hook"],
            n_tokens=int(meta["n_tokens"]),
            context=int(meta["context"]),
            note=meta.get("note", ""),
            **arrays,
        )

    def save(self, path: str | Path) -> Path:
        """Write the pages as a result directory (see :meth:`to_result`)."""
        saved: Path = self.to_result().save(path)
        return saved

    @classmethod
    def load(cls, path: str | Path) -> FeaturePages:
        from interp.results import Result

        return cls.from_result(Result.load(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeaturePages):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name))
            if isinstance(getattr(self, f.name), np.ndarray)
            else getattr(self, f.name) == getattr(other, f.name)
            for f in dataclasses.fields(self)
        )


def has_feature_pages(result: Any) -> bool:
    """Whether ``result`` holds feature pages (``metrics["features"]`` and every ``features_*``
    array)."""
    return "features" in result.metrics and all(ARRAY_PREFIX + n in result.arrays for n in _ARRAYS)


def histogram_edges(n_bins: int = 40, log_range: tuple[float, float] = (-4.0, 4.0)) -> np.ndarray:
    """``[n_bins + 1]`` activation edges, log10-spaced over ``10**log_range``."""
    return np.logspace(log_range[0], log_range[1], n_bins + 1)


# ------------------------------------------------------------------ the pass
class _Scan:
    """What one streaming pass over the codes keeps per latent: how often it fired, a histogram
    of its log10 activations, and its top ``k`` activations (descending; 0 marks an empty slot)
    with their global flat index ``item * T + pos`` and the ``2 * context + 1`` codes around
    each. Buffers live on ``device``."""

    def __init__(
        self,
        d_sae: int,
        k: int,
        context: int,
        n_bins: int,
        log_range: tuple[float, float],
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.d_sae, self.k, self.n_bins = d_sae, k, n_bins
        self.lo, self.width = log_range[0], (log_range[1] - log_range[0]) / n_bins
        self.fires = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.hist = torch.zeros(d_sae * n_bins, dtype=torch.int64, device=device)
        self.best = torch.zeros(d_sae, k, dtype=dtype, device=device)
        self.best_flat = torch.zeros(d_sae, k, dtype=torch.int64, device=device)
        self.best_ctx = torch.zeros(d_sae, k, 2 * context + 1, dtype=dtype, device=device)
        self.offsets = torch.arange(-context, context + 1, device=device)  # [W]
        self.n_tokens = 0

    def add(self, f: torch.Tensor, first: int) -> None:
        """Codes ``f`` ``[b, T, d_sae]`` of the items whose first position has flat index
        ``first``."""
        b, T, d_sae = f.shape
        self.n_tokens += b * T
        flat = f.reshape(b * T, d_sae)  # [b * T, d_sae]
        # the firing entries (sparse), in position order
        tok, latent = (flat > 0).nonzero().unbind(1)
        vals = flat[tok, latent]
        self.fires += torch.bincount(latent, minlength=d_sae)
        bins = ((vals.log10() - self.lo) / self.width).floor().clamp(0, self.n_bins - 1).long()
        self.hist += torch.bincount(latent * self.n_bins + bins, minlength=d_sae * self.n_bins)
        # candidates for the top k: only entries above the latent's current k-th best (ties go
        # to the earlier position, and every earlier position is in the buffers already)
        new = vals > self.best[latent, self.k - 1]
        if not bool(new.any()):
            return
        tok, latent, vals = tok[new], latent[new], vals[new]
        row, p = tok // T, tok % T
        wpos = p[:, None] + self.offsets  # [n, W]
        inside = (wpos >= 0) & (wpos < T)
        ctx = (
            f[row[:, None].expand_as(wpos), wpos.clamp(0, T - 1), latent[:, None].expand_as(wpos)]
            * inside
        )
        self.best, self.best_flat, self.best_ctx = _merge(
            self.best, self.best_flat, self.best_ctx, latent, vals, first + tok, ctx
        )


@torch.no_grad()
def feature_pages(
    sae: Any,
    store: Any,
    hook: str,
    *,
    model: Any = None,
    tokenizer: Any = None,
    k: int = 10,
    context: int = 8,
    n_bins: int = 40,
    n_logit_tokens: int = 10,
    batch_size: int = 32,
    log_range: tuple[float, float] = (-4.0, 4.0),
) -> FeaturePages:
    """Feature pages of every latent of ``sae`` on ``store[hook]`` (``positions="all"``), in one
    streaming pass over the store's shards, ``batch_size`` items per encode (memory: about
    ``2 * batch_size * T * d_sae`` codes at a time, plus the ``[d_sae, k, W]`` buffers), on the
    SAE's device.

    ``model``: for logit effects (a TransformerLens-bridge :class:`~interp.tracing.model.Model`);
    ``tokenizer`` (default: the model's): token strings (``decode([id])``, a callable, or a list).
    """
    _check_store(store, hook)
    if k < 1 or context < 0 or batch_size < 1:
        raise ValueError(
            f"feature pages need k >= 1, context >= 0 and batch_size >= 1; got k={k}, "
            f"context={context}, batch_size={batch_size}"
        )
    T = int(store.manifest.arrays[hook].shape[0])
    d_sae = int(sae.cfg.d_sae)
    tokens = store.tokens[
        :, _first_position(store.manifest.positions) :
    ]  # [N, T] (small next to the activations)
    edges = histogram_edges(n_bins, log_range)
    dtype = sae.W_dec.dtype
    dev = sae.W_dec.device  # buffers live beside the SAE (a GPU pass moves only the batches there)
    scan = _Scan(d_sae, k, context, n_bins, log_range, dtype, dev)
    for start, stop, shard in store.iter_shards(hook):
        for a in range(0, stop - start, batch_size):
            x = shard[a : a + batch_size].to(dev, dtype)  # [b, T, d_in]
            scan.add(sae.encode(x), (start + a) * T)  # codes [b, T, d_sae]
    best, best_flat, best_ctx, fires, hist = (
        t.cpu() for t in (scan.best, scan.best_flat, scan.best_ctx, scan.fires, scan.hist)
    )
    offsets, n_tokens = scan.offsets.cpu(), scan.n_tokens
    empty = best <= 0
    items = torch.where(empty, -1, best_flat // T)
    pos_ = torch.where(empty, -1, best_flat % T)
    ctx_tokens, best_ctx = _contexts(items, pos_, offsets, tokens, best_ctx, T)
    promoted, pvals, suppressed, svals, note = _logit_effects(sae, model, n_logit_tokens)
    used = np.unique(
        np.concatenate([ctx_tokens[ctx_tokens >= 0].numpy(), promoted.ravel(), suppressed.ravel()])
    )
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    strings = np.array(
        [_decode(tokenizer, int(t)) for t in used] if tokenizer is not None else [], dtype=str
    )
    return FeaturePages(
        hook=hook,
        n_tokens=n_tokens,
        context=context,
        note=note,
        density=(fires.double() / max(n_tokens, 1)).numpy(),
        hist_edges=edges,
        hist_counts=hist.view(d_sae, n_bins).numpy(),  # [d_sae, n_bins]
        top_acts=torch.where(empty, 0, best).numpy(),
        top_items=items.numpy(),
        top_pos=pos_.numpy(),
        ctx_tokens=ctx_tokens.numpy(),
        ctx_acts=best_ctx.numpy(),
        promoted=promoted,
        promoted_values=pvals,
        suppressed=suppressed,
        suppressed_values=svals,
        string_ids=used.astype(np.int64) if tokenizer is not None else np.zeros(0, np.int64),
        strings=strings,
    )


def _contexts(
    items: torch.Tensor,
    pos: torch.Tensor,
    offsets: torch.Tensor,
    tokens: Any,
    codes: torch.Tensor,
    T: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[d_sae, k, W]`` around each top activation (``items``/``pos`` ``[d_sae, k]``,
    -1 for an empty slot; ``T`` positions per item) and the codes there, -1 / 0 outside the
    sequence or the slot."""
    empty = items < 0
    wpos = pos[..., None] + offsets  # [d_sae, k, W]
    inside = (wpos >= 0) & (wpos < T) & ~empty[..., None]
    tok_t = torch.as_tensor(np.asarray(tokens)).long()
    ctx_tokens = torch.where(
        inside, tok_t[items.clamp(min=0)[..., None].expand_as(wpos), wpos.clamp(0, T - 1)], -1
    )
    return ctx_tokens, torch.where(inside, codes, torch.zeros((), dtype=codes.dtype))


def _first_position(positions: str) -> int:
    """The first position a store kept: 0 for ``"all"``, ``s`` for ``slice(s, None)`` (a store
    that skips the first positions, e.g. an attention sink); -1 for anything else."""
    import re

    if positions == "all":
        return 0
    found = re.fullmatch(r"slice\((\d+|None), None, None\)", positions)
    return -1 if found is None else int(found.group(1) if found.group(1) != "None" else 0)


def _check_store(store: Any, hook: str) -> None:
    m = store.manifest
    if hook not in m.arrays:
        from interp.utils import unknown_name_error

        raise unknown_name_error("hook name", hook, list(m.arrays))
    if _first_position(m.positions) < 0 or len(m.arrays[hook].shape) != 2:
        raise ValueError(
            f"feature pages need a store collected with positions='all' or slice(s, None) "
            f"(activations [N, T, d]); "
            f"this one has positions={m.positions!r} and per-item shape {m.arrays[hook].shape} "
            f"at {hook}: collect again with interp.collect(..., positions='all')"
        )
    if store.tokens is None:
        raise ValueError(
            "feature pages need the input tokens, and this store has none (collected from vectors, "
            "not token ids)"
        )


def _merge(
    best: torch.Tensor,
    best_flat: torch.Tensor,
    best_ctx: torch.Tensor,
    latent: torch.Tensor,
    vals: torch.Tensor,
    flat: torch.Tensor,
    ctx: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The top ``k`` per latent of the ``[d_sae, k]`` buffers and new entries (``latent``, ``vals``,
    global ``flat`` index, ``ctx`` ``[n, W]``, in position order, every one later than the
    buffers'): descending by value, ties to the earlier position. Only the latents with new
    entries are touched."""
    d_sae, k = best.shape
    rows = torch.unique(latent)  # sorted
    r = len(rows)
    local = torch.searchsorted(rows, latent)  # new entry -> its row among ``rows``
    lat = torch.cat([torch.arange(r, device=best.device).repeat_interleave(k), local])
    v = torch.cat([best[rows].reshape(-1), vals])
    g = torch.cat([best_flat[rows].reshape(-1), flat])
    c = torch.cat([best_ctx[rows].reshape(r * k, -1), ctx])
    # The buffers hold each row's entries by value, ties in position order, and every new entry is
    # later: so two stable sorts (value descending, then row) leave ties in position order.
    order = torch.argsort(-v, stable=True)
    order = order[torch.argsort(lat[order], stable=True)]
    lat, v, g, c = lat[order], v[order], g[order], c[order]
    counts = torch.bincount(lat, minlength=r)
    rank = torch.arange(len(lat), device=lat.device) - (torch.cumsum(counts, 0) - counts)[lat]
    keep = rank < k  # every row has its k buffer slots, so exactly k are kept per row
    best, best_flat, best_ctx = best.clone(), best_flat.clone(), best_ctx.clone()
    dst = rows[lat[keep]], rank[keep]
    best[dst], best_flat[dst], best_ctx[dst] = v[keep], g[keep], c[keep]
    return best, best_flat, best_ctx


def _logit_effects(
    sae: Any, model: Any, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Top-``n`` promoted and suppressed token ids (and values) of each decoder row through
    ``W_U``: ``(promoted, their values, suppressed, their values, note)``, ``[d_sae, n]`` each."""
    d_sae = int(sae.cfg.d_sae)
    if model is None:
        z = np.zeros((d_sae, 0))
        return z.astype(np.int64), z, z.astype(np.int64), z, NO_MODEL_NOTE
    effects = logit_effects(sae, model).cpu()  # [d_sae, d_vocab]
    n = min(n, effects.shape[1])
    up_v, up = effects.topk(n, dim=1)
    down_v, down = (-effects).topk(n, dim=1)
    return up.numpy(), up_v.numpy(), down.numpy(), (-down_v).numpy(), ""


@torch.no_grad()
def logit_effects(sae: Any, model: Any) -> torch.Tensor:
    """``[d_sae, d_vocab]``: each decoder row (in the model's units, ``input_scale`` folded in) read
    through the unembedding without the final norm, bias removed: ``W_dec @ W_U``."""
    from interp.tracing.readout import unembed

    w_dec = sae.folded()["W_dec"].detach()  # [d_sae, d_in]
    w_u = getattr(model.module, "W_U", None)
    if isinstance(w_u, torch.Tensor):
        effects: torch.Tensor = (w_dec.to(w_u.device, w_u.dtype) @ w_u.detach()).float()
        return effects
    # unembed adds b_U: subtracting the logits of the zero vector leaves W_dec @ W_U
    zero = torch.zeros(1, w_dec.shape[1], dtype=w_dec.dtype, device=w_dec.device)
    return (unembed(model, w_dec, norm=False) - unembed(model, zero, norm=False)).float()


def _decode(tokenizer: Any, token_id: int) -> str:
    if hasattr(tokenizer, "decode"):
        return str(tokenizer.decode([token_id]))
    if callable(tokenizer):
        return str(tokenizer(token_id))
    return str(tokenizer[token_id])


def dense_density(sae: Any, acts: torch.Tensor) -> np.ndarray:
    """``[d_sae]`` fraction of rows of ``acts [..., d_in]`` where each latent is > 0 (a direct
    check)."""
    with torch.no_grad():
        f = sae.encode(acts.to(sae.W_dec.device, sae.W_dec.dtype)).reshape(
            -1, sae.cfg.d_sae
        )  # [rows, d_sae]
    density: np.ndarray = (f > 0).double().mean(0).cpu().numpy()
    return density


__all__ = [
    "FeaturePages",
    "feature_pages",
    "logit_effects",
    "has_feature_pages",
    "histogram_edges",
    "dense_density",
    "ARRAY_PREFIX",
    "NO_MODEL_NOTE",
]
