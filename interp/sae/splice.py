"""SAEs in the forward pass: run a model with sparse autoencoders spliced in at hook names.

::

    codes = "blocks.0.hook_resid_post.hook_sae_acts_post"
    with spliced(m, {"blocks.0.hook_resid_post": sae}, error_term=True):
        out, acts = interp.trace(m, tokens, capture=[codes])
        out, _ = interp.trace(m, tokens, edits={codes: zero_latent})

While spliced, the activation at the hook is replaced by the SAE's reconstruction, and every
spliced hook gets hook names of its own (SAELens's names), listed in ``m.hook_names`` just
before the hook, in the order they are computed:

- ``<hook>.hook_sae_input``      the activation entering the SAE  ``[batch, pos, d_in]``
- ``<hook>.hook_sae_acts_post``  the latents, ``sae.encode(input)`` ``[batch, pos, d_sae]``
- ``<hook>.hook_sae_recons``     ``sae.decode(latents)``          ``[batch, pos, d_in]``
- ``<hook>.hook_sae_error``      (``error_term=True`` only) ``activation - clean reconstruction``
- ``<hook>.hook_sae_output``     what the rest of the model reads ``[batch, pos, d_in]``

and ``<hook>`` itself then reads the SAE's output. They are captured (``trace``, ``collect``)
and edited (``edits={name: fn}``) like any other activation; an edit of the latents reaches
the output through the decoder.

The error term follows SAELens (``SAE.use_error_term``): it is computed from the *clean*
activation, by the SAE with no edits applied, and carries no gradient. So with
``error_term=True`` the spliced forward equals the clean one, and an edit of the input, the
latents or the reconstruction changes the output by exactly what it changes the
reconstruction.

An activation whose last two dims multiply to ``d_in`` (``hook_z``: ``[batch, pos, head,
d_head]``) is flattened to ``[batch, pos, head * d_head]`` for the SAE and viewed back
afterwards, as SAELens does for attention-output SAEs.

``collect`` of a spliced model runs the bridge's own hooks (its plain-module fast path has
no HookPoints to splice at); an unspliced model keeps the fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from interp.tracing.model import Model

# SAELens's names for what a spliced SAE computes, in order; "error" only with an error term.
PARTS = ("input", "acts_post", "recons", "error", "output")
HookFn = Callable[[torch.Tensor, Any], torch.Tensor]


class Splice:
    """One SAE spliced in at one hook: a torch forward hook on the hook's ``HookPoint``.

    ``names`` are the SAE's hook names; :meth:`bound` gives them captures and edits (built
    by ``Model.hooked``) for the duration of one ``trace`` or ``collect``.
    """

    def __init__(self, host: str, sae: Any, error_term: bool, per_step: bool = False):
        # sae: an interp.sae.SAE, or any module with encode, decode and W_dec (checked by spliced)
        self.host, self.sae, self.error_term, self.per_step = host, sae, bool(error_term), per_step
        parts = [p for p in PARTS if p != "error" or self.error_term]
        self.names = tuple(f"{host}.hook_sae_{p}" for p in parts)
        self._input, self._acts, self._recons = self.names[:3]
        self._error = f"{host}.hook_sae_error" if self.error_term else None
        self._output = self.names[-1]
        self.hooks: dict[str, HookFn] = {}

    @contextmanager
    def bound(self, hooks: dict[str, HookFn]) -> Iterator[None]:
        """Apply ``hooks`` (``{sae hook name: hook(act, None) -> act}``) while inside."""
        unknown = set(hooks) - set(self.names)
        if unknown:
            raise KeyError(f"not hook names of the SAE at {self.host!r}: {sorted(unknown)}")
        if self.hooks:
            raise RuntimeError(
                f"the SAE at {self.host!r} is already in use by another trace or collect"
            )
        self.hooks = dict(hooks)
        try:
            yield
        finally:
            self.hooks = {}

    def _at(self, name: str | None, value: torch.Tensor) -> torch.Tensor:
        hook = self.hooks.get(name) if name is not None else None
        return value if hook is None else hook(value, None)

    def __call__(self, module: nn.Module, args: Any, act: torch.Tensor) -> torch.Tensor:
        if not isinstance(act, torch.Tensor):
            raise TypeError(
                f"cannot splice an SAE at {self.host!r}: it carries a {type(act).__name__}, not "
                "a tensor"
            )
        x = self._flatten(act)  # [..., d_in] in the SAE's dtype and device
        sae, hooks = self.sae, self.hooks
        sae_in = self._at(self._input, x)
        f = self._at(self._acts, sae.encode(sae_in))  # [..., d_sae]
        rec = sae.decode(f)  # [..., d_in]
        clean = rec if self._input not in hooks and self._acts not in hooks else None
        rec = self._at(self._recons, rec)
        out = rec
        if self.error_term:
            # SAELens: the error is the clean activation minus the unedited SAE's reconstruction,
            # without gradient, so edits reach the output only through the reconstruction.
            with torch.no_grad():
                if clean is None:
                    clean = sae.decode(sae.encode(x))
                err = x - clean.detach()
            out = rec + self._at(self._error, err)
        out = self._at(self._output, out)
        return out.reshape(act.shape).to(
            act.device, act.dtype
        )  # [..., head * d_head] -> act's shape

    def _flatten(self, act: torch.Tensor) -> torch.Tensor:
        d_in = int(self.sae.W_dec.shape[-1])
        if act.shape[-1] == d_in:
            x = act
        elif act.ndim >= 2 and act.shape[-2] * act.shape[-1] == d_in:
            x = act.flatten(-2)  # [..., head, d_head] -> [..., head * d_head]
        else:
            raise ValueError(
                f"the SAE at {self.host!r} takes d_in={d_in}, but the activation has shape "
                f"{tuple(act.shape)}; train or load an SAE for this hook"
            )
        p = self.sae.W_dec
        return x.to(p.device, p.dtype)


def _by_hook(
    saes: Mapping[str, nn.Module] | Sequence[nn.Module] | nn.Module,
) -> dict[str, nn.Module]:
    if isinstance(saes, Mapping):
        return dict(saes)
    items = [saes] if isinstance(saes, nn.Module) else list(saes)
    out: dict[str, nn.Module] = {}
    for sae in items:
        name = getattr(getattr(sae, "cfg", None), "hook_name", None)
        if not name:
            raise ValueError(
                "an SAE given without a hook name has no cfg.hook_name; pass {hook name: sae}"
            )
        if name in out:
            raise ValueError(f"two SAEs for hook {name!r}; splice one per hook")
        out[name] = sae
    return out


@contextmanager
def spliced(
    m: Model,
    saes: Mapping[str, nn.Module] | Sequence[nn.Module] | nn.Module,
    *,
    error_term: bool = False,
) -> Iterator[Model]:
    """Run ``m`` with SAEs spliced in while inside; yields ``m`` itself.

    Args:
        m: a TransformerLens-backed :class:`Model` (a zoo or Hugging Face transformer, our RNNs).
        saes: ``{hook name: SAE}``, or SAEs (one or a list) placed at their ``cfg.hook_name``.
        error_term: add back ``activation - reconstruction`` (of the clean activation) so the
            output is unchanged unless the SAE's latents or reconstruction are edited.

    Splices nest (an inner ``spliced`` adds SAEs at other hooks); one SAE per hook.
    """
    if m.backend != "tl":
        raise RuntimeError(
            f"spliced needs a TransformerLens-backed model (HookPoints); {m.model_id} "
            f"uses the {m.backend!r} backend"
        )
    table = _by_hook(saes)
    m.check_names(list(table))
    points = m._hook_points()
    taken = {id(points[h]): h for h in m._splices}
    for name, sae in table.items():
        if m.spliced_name(name) is not None:
            raise ValueError(f"{name!r} is a name of a spliced SAE; splice at a model hook")
        if not (hasattr(sae, "encode") and hasattr(sae, "decode") and hasattr(sae, "W_dec")):
            raise TypeError(
                f"the SAE for {name!r} is a {type(sae).__name__}; pass an interp.sae.SAE"
            )
        if id(points[name]) in taken:
            raise ValueError(
                f"an SAE is spliced at {taken[id(points[name])]!r} already (the same activation "
                f"as {name!r}); one SAE per hook"
            )
        taken[id(points[name])] = name
    added: list[tuple[str, Any]] = []
    try:
        for name, sae in table.items():
            hp = points[name]
            s = Splice(name, sae, error_term, per_step=bool(getattr(hp, "per_step", False)))
            # A plain torch hook, registered before any edit's: edits and captures of the hook
            # name itself then see the SAE's output, and TransformerLens's reset_hooks keeps it.
            added.append((name, hp.register_forward_hook(s)))
            m._splices[name] = s
        yield m
    finally:
        for name, handle in reversed(added):
            handle.remove()
            m._splices.pop(name, None)
