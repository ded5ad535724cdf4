"""One model wrapper for every backend, with one hook-name scheme.

Backends:

- ``"tl"``: a TransformerLens ``TransformerBridge`` (zoo transformers via
  ``boot_native``, Hugging Face models via ``boot_transformers``) or a
  ``HookedRootModule`` (our RNNs). Activations are ``HookPoint`` modules named by
  TransformerLens (``blocks.0.hook_resid_post``, ``blocks.0.attn.hook_z``, ...).
- ``"nnsight"``: any other ``nn.Module``. Every submodule ``path`` offers
  ``path.hook_in`` (its first input) and ``path.hook_out`` (its output), the names the
  bridge uses for its own components.

Hooks that fire once per time step (RNN cells, ``HookPoint.per_step = True``) are
stacked along dim 1 when captured, so an RNN's ``rnn.hook_h`` reads ``[batch, time, hidden]``.

While an SAE is spliced in at a hook (:func:`interp.sae.splice.spliced`), that hook's SAE
names (``<hook>.hook_sae_acts_post``, ...) are hook names too: :attr:`Model.hook_names`
lists them just before their hook and :meth:`Model.hooked` hands their captures and edits to
the splice (``_splices``: hook name -> splice; this module knows only its ``names``,
``per_step`` and ``bound``, so tracing does not import the SAE code).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

# How a hook runs an edit and keeps a capture is tracing/hooks.py's; re-exported here, the
# import path the rest of interp has always used.
from interp.tracing.hooks import EditFn as EditFn
from interp.tracing.hooks import StopForward as StopForward
from interp.tracing.hooks import checked_edit as checked_edit
from interp.tracing.hooks import make_hook
from interp.utils import unknown_name_error


class Model:
    """A traceable model: ``module`` plus its tokenizer, hook names and provenance.

    Build one with :func:`interp.load_model` or :func:`interp.wrap`.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        backend: str,
        tokenizer: Any = None,
        model_id: str = "module",
        kind: str = "transformer",
        spec: dict[str, Any] | None = None,
        example_input: Any = None,
    ):
        if backend not in ("tl", "nnsight"):
            raise ValueError(f"backend must be 'tl' or 'nnsight', got {backend!r}")
        self.module = module
        self.backend = backend
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.kind = kind
        self.spec = spec or {}
        self.example_input = example_input
        self._hook_names: list[str] | None = None
        self._nnsight = None
        self._layer_of: dict[str, int] = {}
        # hook name -> splice object (interp.sae.splice.Splice), in splicing order
        self._splices: dict[str, Any] = {}
        self.source: dict[str, Any] | None = (
            None  # where the weights came from, when converted (a GGUF file's record)
        )

    # ------------------------------------------------------------------ basics
    def __repr__(self) -> str:
        return (
            f"Model({self.model_id!r}, kind={self.kind}, backend={self.backend}, "
            f"hooks={len(self.hook_names)})"
        )

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.module.parameters():
            return p.dtype
        return torch.float32

    def to(self, device: Any) -> Model:
        """Move the weights to ``device``. A device this machine lacks fails first, with a clear
        ``ValueError``; a move that fails half-way is undone (weights and ``cfg.device`` back where
        they were), so the model is never marked as being somewhere it is not."""
        from interp.utils import resolve_device

        dev = resolve_device(device)
        cfg, old = self.cfg, self.device
        old_cfg_device = getattr(cfg, "device", None)
        try:
            self.module.to(dev)
        except BaseException:
            try:
                self.module.to(old)
            finally:
                if cfg is not None and old_cfg_device is not None:
                    cfg.device = old_cfg_device
            raise
        return self

    def eval(self) -> Model:
        self.module.eval()
        return self

    @property
    def cfg(self) -> Any:
        """TransformerLens config of a transformer (``n_layers``, ``n_heads``, ...)."""
        return getattr(self.module, "cfg", None)

    @property
    def n_layers(self) -> int:
        cfg = self.cfg
        return int(getattr(cfg, "n_layers", 0) or 0)

    def __call__(self, inputs: Any) -> torch.Tensor:
        return self.forward(self.prepare(inputs))

    def forward(self, x: Any) -> torch.Tensor:
        out: torch.Tensor = (self._raw_module() if self.backend == "nnsight" else self.module)(x)
        return out

    # ----------------------------------------------------------------- inputs
    def prepare(self, inputs: Any) -> Any:
        """Turn text (a string or list of strings) into tokens; move tensors to the device.

        Token ids are checked first (integers, a non-empty batch, inside the vocabulary), so a
        bad input is a ``ValueError`` / ``TypeError`` that says what is wrong, not an error from
        deep inside the forward pass."""
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError(
                "inputs: an empty list; pass a text, a list of texts or token ids [batch, pos]"
            )
        if isinstance(inputs, str) or (
            isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], str)
        ):
            return self.to_tokens(inputs)
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (list, tuple)):
            inputs = torch.tensor(inputs)
        if isinstance(inputs, torch.Tensor):
            self.check_tokens(inputs)
            return inputs.to(self.device)
        return inputs

    @property
    def d_vocab(self) -> int | None:
        """Size of the token vocabulary, or None for a model that takes vectors (or is unknown)."""
        spec = getattr(self.module, "spec", None)  # our RNNs
        if spec is not None and hasattr(spec, "d_vocab"):
            vocab: int | None = spec.d_vocab  # None: the RNN takes vectors
            return vocab
        if self.backend == "tl" and self.kind in ("transformer", "vlm"):
            return getattr(self.cfg, "d_vocab", None)
        return None

    def check_tokens(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is a non-empty batch of ids the model can embed."""
        vocab = self.d_vocab
        if x.numel() == 0:
            raise ValueError(
                f"inputs: an empty batch (shape {list(x.shape)}); pass at least one sequence"
            )
        if vocab is None:
            return
        if x.dtype.is_floating_point or x.dtype == torch.bool or x.is_complex():
            raise TypeError(
                f"inputs: {self.model_id} takes token ids (an integer tensor [batch, pos]), got a "
                f"{str(x.dtype).replace('torch.', '')} tensor of shape {list(x.shape)}"
            )
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(
                f"inputs: token ids must lie in [0, {vocab}) (the vocabulary of {self.model_id}); "
                f"got ids from {lo} to {hi}"
            )

    @property
    def start_token_id(self) -> int | None:
        """The token plain text starts with: the tokenizer's BOS (None: no tokenizer or no BOS).
        For SmolLM2, whose GGUF declares the chat token ``<|im_start|>`` as BOS, the loader sets
        BOS to ``<|endoftext|>``, the document start of its pretraining text."""
        return getattr(self.tokenizer, "bos_token_id", None) if self.tokenizer is not None else None

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool = True) -> torch.Tensor:
        """Tokens ``[batch, pos]`` for text, after the model's start token (``start_token_id``)
        when ``prepend_bos``; right-padded if lengths differ."""
        if self.tokenizer is None:
            raise ValueError(
                f"{self.model_id} has no tokenizer: pass token ids (a LongTensor) instead of text"
            )
        if hasattr(self.module, "to_tokens") and self.kind == "transformer":
            tokens = self._hooked.to_tokens(text, prepend_bos=prepend_bos, padding_side="right")
            return torch.as_tensor(tokens).to(self.device)
        texts = [text] if isinstance(text, str) else list(text)
        ids = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        bos = self.start_token_id
        if prepend_bos and bos is not None:
            ids = [[bos, *x] for x in ids]
        pad = getattr(self.tokenizer, "pad_token_id", None) or 0
        width = max(len(x) for x in ids)
        out = torch.full((len(ids), width), pad, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out.to(self.device)

    def text_tokens(
        self, texts: Sequence[str], prepend_bos: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens [N, T] right-padded, lengths [N])`` of ``texts`` on the CPU. Each length is
        what the tokenizer itself makes of that text alone, never guessed from pad tokens (a pad
        id can be EOS, or 0, and occur in real text)."""
        texts = list(texts)
        tokens = self.to_tokens(texts, prepend_bos=prepend_bos).cpu()
        if not (hasattr(self.module, "to_tokens") and self.kind == "transformer"):
            bos = getattr(self.tokenizer, "bos_token_id", None)
            extra = int(prepend_bos and bos is not None)
            counts = [len(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]
            lengths = torch.tensor(counts) + extra
            return tokens, lengths.clamp(1, tokens.shape[-1])
        # The bridge tokenises the batch with the tokenizer (right padding), and prepends BOS
        # itself when the tokenizer does not: the tokenizer's own attention mask, plus that BOS.
        cfg = self.module.cfg
        n_ctx = getattr(cfg, "n_ctx", None)
        enc = self.tokenizer(
            texts,
            padding=True,
            padding_side="right",
            truncation=n_ctx is not None,
            max_length=n_ctx,
            return_attention_mask=True,
        )
        manual_bos = prepend_bos and not getattr(cfg, "tokenizer_prepends_bos", True)
        lengths = torch.tensor([sum(mask) for mask in enc["attention_mask"]]) + int(manual_bos)
        return tokens, lengths.clamp(1, tokens.shape[-1])

    def to_string(self, tokens: Any) -> str | list[str]:
        if self.tokenizer is None:
            raise ValueError(f"{self.model_id} has no tokenizer")
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.tolist()
        if isinstance(tokens, int):  # one token (a 0-d tensor)
            tokens = [tokens]
        if tokens and isinstance(tokens[0], list):
            return [str(self.tokenizer.decode(t)) for t in tokens]
        return str(self.tokenizer.decode(tokens))

    def to_str_tokens(self, tokens: Any) -> list[str]:
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.reshape(-1).tolist()
        return [self.tokenizer.decode([t]) for t in tokens]

    # ------------------------------------------------------------------ hooks
    @property
    def hook_names(self) -> list[str]:
        """Every capturable activation name, in execution order (with the names of spliced
        SAEs, each just before the hook it replaces)."""
        if self._hook_names is None:
            self._hook_names = self._discover_hook_names()
        if not self._splices:
            return list(self._hook_names)
        splices = self._splices
        return [
            n
            for host in self._hook_names
            for n in (*(splices[host].names if host in splices else ()), host)
        ]

    def spliced_name(self, name: str) -> Any:
        """The splice that computes ``name`` (an SAE hook name such as
        ``blocks.0.hook_resid_post.hook_sae_acts_post``), or None for a model hook."""
        host = name.rpartition(".")[0]
        s = self._splices.get(host)
        return s if s is not None and name in s.names else None

    def per_step(self, name: str) -> bool:
        """Whether ``name`` fires once per time step (captures are stacked along dim 1)."""
        s = self.spliced_name(name) if self._splices else None
        if s is not None:
            return bool(s.per_step)
        return bool(getattr(self._hook_points().get(name), "per_step", False))

    def check_names(self, names: Sequence[str]) -> None:
        """Raise ``KeyError`` naming the closest valid names for any unknown name."""
        valid = set(self.hook_names)
        for name in names:
            if name not in valid:
                raise unknown_name_error("hook name", name, self.hook_names)

    @property
    def _hooked(self) -> Any:
        """``module`` as TransformerLens's hooked root (``hook_dict``, ``hooks``, ``to_tokens``,
        ``blocks``): torch types every module attribute as ``Tensor | Module``, which they are
        not, and TransformerLens itself is untyped."""
        return self.module

    def _hook_points(self) -> dict[str, nn.Module]:
        return dict(self._hooked.hook_dict)

    def _discover_hook_names(self) -> list[str]:
        if self.backend == "nnsight":
            names = []
            for path, _ in self._raw_module().named_modules():
                if path:
                    names += [f"{path}.hook_in", f"{path}.hook_out"]
            return names
        points = self._hook_points()
        order: dict[int, int] = {}
        if self.example_input is not None or self.kind == "transformer":
            order = self._firing_order(points)
        # Names of hooks that fired, in firing order; aliases share their target's slot.
        # Hooks that never fire for this model (e.g. hook_result when not enabled) are
        # not capturable and are left out.
        if not order:
            return list(points)
        ranked = [
            (order[id(hp)], i, name)
            for i, (name, hp) in enumerate(points.items())
            if id(hp) in order
        ]
        return [name for _, _, name in sorted(ranked)]

    def _firing_order(self, points: dict[str, nn.Module]) -> dict[int, int]:
        order: dict[int, int] = {}

        def record(hook_id: int, mod: nn.Module, args: Any, out: Any) -> None:
            order.setdefault(hook_id, len(order))

        handles = [
            hp.register_forward_hook(functools.partial(record, id(hp)))
            for hp in {id(h): h for h in points.values()}.values()
        ]
        try:
            x = self.example_input
            if x is None:
                x = torch.zeros(1, 4, dtype=torch.long)
            x = x.to(self.device)
            with torch.no_grad():
                self.module(x)
        finally:
            for h in handles:
                h.remove()
        return order

    # Short names of the per-layer activations -> their place under ``blocks.{layer}``.
    LAYER_HOOKS = {
        "resid_pre": "hook_resid_pre",  # [batch, pos, d_model]
        "resid_mid": "hook_resid_mid",  # [batch, pos, d_model]
        "resid_post": "hook_resid_post",  # [batch, pos, d_model]
        "attn_in": "attn.hook_in",  # [batch, pos, d_model]
        "attn_out": "hook_attn_out",  # [batch, pos, d_model]
        "mlp_out": "hook_mlp_out",  # [batch, pos, d_model]
        "q": "attn.hook_q",  # [batch, pos, head, d_head]
        "k": "attn.hook_k",  # [batch, pos, head, d_head]
        "v": "attn.hook_v",  # [batch, pos, head, d_head]
        "z": "attn.hook_z",  # [batch, pos, head, d_head]
        "scores": "attn.hook_attn_scores",  # [batch, head, query_pos, key_pos]
        "pattern": "attn.hook_pattern",  # [batch, head, query_pos, key_pos]
        "result": "attn.hook_result",  # [batch, pos, head, d_model]
        "mlp_pre": "mlp.hook_pre",  # [batch, pos, d_mlp]
        "mlp_post": "mlp.hook_post",  # [batch, pos, d_mlp]
    }

    def hook(self, kind: str, layer: int | None = None) -> str:
        """The hook name of activation ``kind`` in block ``layer``: ``m.hook("resid_post", 3)``
        -> ``"blocks.3.hook_resid_post"``; ``m.hook("embed")`` -> ``"hook_embed"``. Checked
        against :attr:`hook_names`; a negative layer counts from the end."""
        if layer is None:
            name = kind if kind.startswith("hook_") or "." in kind else f"hook_{kind}"
        else:
            if kind not in self.LAYER_HOOKS:
                raise unknown_name_error("per-layer activation", kind, sorted(self.LAYER_HOOKS))
            L = self.n_layers
            if not -L <= layer < L:
                raise IndexError(f"layer {layer} is out of range: {self.model_id} has {L} layers")
            name = f"blocks.{layer % L}.{self.LAYER_HOOKS[kind]}"
        self.check_names([name])
        return name

    def resid_names(self) -> list[str]:
        """The residual stream from input to output: the embedding (``blocks.0.hook_resid_pre``)
        then each block's ``hook_resid_post``; ``L + 1`` names for a transformer."""
        if self.kind in ("transformer", "vlm") and self.n_layers:
            return [self.hook("resid_pre", 0)] + [
                self.hook("resid_post", layer) for layer in range(self.n_layers)
            ]
        names = self.hook_names
        return [
            h for h in names if h == "hook_embed" or (h.endswith("hook_out") and "rnn" not in h)
        ]

    def layer_of(self, name: str) -> int | None:
        """Block index a hook belongs to (``blocks.3.…`` -> 3), or None."""
        parts = name.split(".")
        if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
            return int(parts[1])
        return None

    @contextmanager
    def hooked(
        self,
        capture: Sequence[str] = (),
        edits: dict[str, EditFn] | None = None,
        *,
        store: dict[str, Any] | None = None,
        stop_after: str | None = None,
        detach: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Context in which forwards of ``self.module`` capture and edit activations.

        ``store`` (returned) maps each captured name to its tensor after the forward.
        ``stop_after``: raise :class:`StopForward` once that hook has fired, ending the
        forward early; the caller catches it (``collect``'s runners do; ``trace`` never asks).
        Names of spliced SAEs (``<hook>.hook_sae_*``) are captured and edited inside the splice.
        TL backend only; the nnsight backend is driven by :func:`interp.trace`.
        """
        if self.backend != "tl":
            raise RuntimeError(
                "Model.hooked is for TransformerLens-backed models; use interp.trace"
            )
        edits = dict(edits or {})
        capture = list(dict.fromkeys(capture))
        self.check_names([*capture, *edits])
        store = {} if store is None else store
        points = self._hook_points()
        fwd = []
        by_splice: dict[int, tuple[Any, list[str]]] = {}
        for name in dict.fromkeys([*edits, *capture]):
            s = self.spliced_name(name) if self._splices else None
            if s is not None:  # computed inside the splice's hook, not at a HookPoint
                by_splice.setdefault(id(s), (s, []))[1].append(name)
                continue
            per_step = bool(getattr(points[name], "per_step", False))
            fwd.append(
                (
                    name,
                    make_hook(
                        name,
                        edits.get(name),
                        name in capture,
                        store,
                        per_step,
                        stop=(name == stop_after),
                        detach=detach,
                    ),
                )
            )
        with ExitStack() as stack:
            for s, names in by_splice.values():
                hooks = {
                    n: make_hook(
                        n,
                        edits.get(n),
                        n in capture,
                        store,
                        bool(s.per_step),
                        stop=(n == stop_after),
                        detach=detach,
                    )
                    for n in names
                }
                stack.enter_context(s.bound(hooks))
            stack.enter_context(self._hooked.hooks(fwd_hooks=fwd))
            yield store
        for name in capture:
            value = store.get(name)
            if isinstance(value, list):  # per-step hook: [batch, ...] x T -> [batch, T, ...]
                store[name] = torch.stack(value, dim=1)

    # ------------------------------------------------- attention and norm weights
    @property
    def n_kv_heads(self) -> int:
        """Key/value heads per layer (fewer than ``cfg.n_heads`` with grouped-query attention)."""
        cfg = self.cfg
        return int(getattr(cfg, "n_key_value_heads", None) or getattr(cfg, "n_heads", 0) or 0)

    @property
    def parallel_attn_mlp(self) -> bool:
        """Whether each block's MLP reads the block's input, not the attention's output
        (GPT-NeoX, GPT-J): ``resid_post = resid_pre + attn_out + mlp_out``."""
        return bool(getattr(self.cfg, "parallel_attn_mlp", False))

    @property
    def post_norm(self) -> bool:
        """Whether blocks normalise after attention (BERT-style post-LN), detected from the order
        the hooks fire in: ``ln1`` runs after the attention's queries."""
        names = self.hook_names
        q, ln1 = "blocks.0.attn.hook_q", "blocks.0.ln1.hook_in"
        return q in names and ln1 in names and names.index(ln1) > names.index(q)

    def attn_weights(self, layer: int) -> dict[str, torch.Tensor | None]:
        """Block ``layer``'s attention weights per head, detached: ``W_Q [heads, d_model,
        d_head]``, ``W_K``/``W_V [kv_heads, d_model, d_head]``, ``W_O [heads, d_head, d_model]``
        and biases ``b_Q [heads, d_head]``, ``b_K``/``b_V [kv_heads, d_head]``, ``b_O
        [d_model]`` (None where the model has none). ``hook_q = norm(x) @ W_Q + b_Q`` per head
        and ``hook_attn_out = sum_h hook_z[h] @ W_O[h] + b_O``."""
        if self.backend != "tl" or not self.n_layers:
            raise ValueError(
                f"{self.model_id} is not a TransformerLens transformer; no attention weights"
            )
        blocks: Any = self.module.blocks
        attn = blocks[layer].attn
        out: dict[str, torch.Tensor | None] = {}
        for k in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"):
            w = getattr(attn, k, None)
            out[k] = w.detach() if isinstance(w, torch.Tensor) else None
        return out

    def norm_module(self, name: str, layer: int | None = None) -> nn.Module:
        """The plain normalisation module (``ln1``, ``ln2`` of block ``layer``, or ``ln_final``)
        that normalises over the last dim of any shape, without firing the bridge's hooks."""
        blocks: Any = self.module.blocks
        root = self.module if layer is None else blocks[layer]
        mod = getattr(root, name, None)
        if mod is None:
            raise KeyError(
                f"{self.model_id} has no {name!r}" + ("" if layer is None else f" in block {layer}")
            )
        plain: nn.Module = getattr(mod, "_original_component", mod)
        return plain

    def norm_input_hook(self, name: str, layer: int | None = None) -> str:
        """The hook on the input of a normalisation (``ln2`` of block ``layer``: what the MLP
        reads from the residual stream; ``ln_final``: what the unembedding reads). Editing it
        changes only what that norm's reader sees, not the residual stream."""
        full = (
            f"{name}.hook_in" if layer is None else f"blocks.{layer % self.n_layers}.{name}.hook_in"
        )
        self.check_names([full])
        return full

    # ---------------------------------------------------------------- nnsight
    def _raw_module(self) -> nn.Module:
        return self.module

    def nnsight_model(self) -> Any:
        """The nnsight wrapper of ``module`` (built on first use)."""
        if self._nnsight is None:
            from nnsight import NNsight

            self._nnsight = NNsight(self.module)
        return self._nnsight

    # ------------------------------------------------------------------ save
    def save(self, path: Any) -> None:
        """Save weights, spec and tokenizer so that ``interp.load_model(path)`` restores it."""
        from interp.models.io import save_model

        save_model(self, path)


def wrap(module: nn.Module, *, tokenizer: Any = None, model_id: str | None = None) -> Model:
    """Wrap any ``nn.Module`` for tracing with nnsight.

    Hook names are ``<submodule path>.hook_in`` / ``.hook_out`` (the first input / the
    output of that submodule), in module-definition order.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"wrap takes a torch.nn.Module, got {type(module).__name__}")
    from transformer_lens.HookedRootModule import HookedRootModule

    if isinstance(module, HookedRootModule) or hasattr(module, "hook_dict"):
        kind = "rnn" if module.__class__.__name__.lower().find("rnn") >= 0 else "transformer"
        return Model(
            module,
            backend="tl",
            tokenizer=tokenizer,
            model_id=model_id or type(module).__name__,
            kind=kind,
        )
    return Model(
        module,
        backend="nnsight",
        tokenizer=tokenizer,
        model_id=model_id or type(module).__name__,
        kind="module",
    )
