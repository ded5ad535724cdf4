"""What the benchmark measures against: the targets, the sizes (:class:`Config`), interleaved
timing and the :class:`Bench` that turns ratios into target criteria."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any, Literal

import torch
import transformers as tr
from pydantic import BaseModel, ConfigDict, Field, field_validator

import interp
from interp.fields import Count, Seed, check_model_name
from interp.models.rnn import HookedRNN, RNNSpec
from interp.models.transformer import TransformerSpec, build_transformer
from interp.results import Result
from interp.tracing.model import Model
from interp.utils import unknown_name_error

log = logging.getLogger(__name__)

# Every fixed performance target (docs/performance.md): criterion name -> (op, threshold). Early
# stop adds ``early_stop_layer{l}_over_full`` (<= (l+1)/L + 0.05) per measured layer.
TARGETS: dict[str, tuple[str, float]] = {
    "collect_over_bare_transformer_compute": ("<=", 1.05),
    "collect_over_tl_filtered_transformer_compute": ("<=", 1.0),
    "collect_over_bare_rnn_compute": ("<=", 1.05),
    "collect_over_tl_filtered_rnn_compute": ("<=", 1.0),
    "collect_over_bare_transformer_overhead": ("<=", 1.10),
    "tl_filtered_over_collect_transformer_overhead": (">=", 1.5),
    "tl_all_over_collect_transformer_overhead": (">=", 2.0),
    "collect_over_bare_rnn_overhead": ("<=", 1.10),
    "tl_filtered_over_collect_rnn_overhead": (">=", 1.5),
    "tl_all_over_collect_rnn_overhead": (">=", 2.0),
    "cuda_collect_to_host_over_bare": ("<=", 1.10),
    "memory_held_over_selected_bytes": ("<=", 1.05),
    "disk_rate_over_memory_rate": (">=", 0.8),
    "sae_store_rate_over_memory_rate": (">=", 0.8),
    "features_pass_over_read_and_encode": ("<=", 3.0),
    "fixed_point_iteration_over_fwd_bwd": ("<=", 1.1),
    "fixed_point_iterations_per_host_sync": (">=", 50.0),
    "jacobian_batched_speedup": (">=", 50.0),
    "eigvals_speedup_over_numpy": (">=", 2.0),
    "knockout_sweep_over_clean_forward": ("<=", 2.0),
    "knockout_speedup_over_full_recompute": (">=", 10.0),
    "knockout_max_abs_logit_error": ("<=", 1e-5),
    "attribution_patching_over_forward": ("<=", 4.5),
    "eap_over_fwd_bwd": ("<=", 3.0),
    "eap_ig_over_fwd_bwd": ("<=", 6.0),  # EAP-IG_STEPS + 1
    "import_seconds_interp_help": ("<", 1.0),
    "generate_with_edits_over_hf_generate": ("<=", 1.15),
}

ITEMS = (
    "collection",
    "hf_collection",
    "memory",
    "early_stop",
    "disk",
    "sae",
    "features",
    "fixed_points",
    "knockout",
    "attribution",
    "circuits",
    "generation",
    "import",
    "real_model",
)


class Config(BaseModel):
    """What to measure and at which sizes (quick: minutes on a shared CPU)."""

    model_config = ConfigDict(extra="forbid")

    model: str = (
        "spec"  # "spec": untrained models built from the sizes below; or a zoo name / directory
    )
    n_layers: Count = 4  # the transformer (docs/performance.md: 4 layers, d_model 256)
    d_model: Count = 256
    n_heads: Count = 4
    n_ctx: Count = 128
    d_vocab: Count = 512
    rnn_cell: Literal["tanh", "relu", "gru", "lstm"] = (
        "gru"  # the RNN (fixed points: GRU, 128 units)
    )
    rnn_hidden: Count = 128
    only: list[str] = Field(default_factory=list)  # items to run (empty: all); see ITEMS
    repeats: Count = 5  # interleaved timing rounds after one warm-up round
    overhead_repeats: Count = (
        11  # rounds at the overhead-bound batch (short calls: more rounds, steadier medians)
    )
    compute_batch: tuple[Count, Count] = (16, 128)  # [batch, pos]: compute-bound
    overhead_batch: tuple[Count, Count] = (1, 8)  # [batch, pos]: overhead-bound (like a fast GPU)
    compute_batches: Count = 2  # batches per timed call, compute-bound
    overhead_batches: Count = 32  # batches per timed call, overhead-bound
    memory_items: Count = 128  # sequences of compute_batch's length for memory / disk / early stop
    feature_items: Count = (
        256  # sequences of compute_batch's length in the feature-page item's store
    )
    sae_steps: Count = 100
    sae_batch: Count = 1024
    fp_states: Count = 256  # fixed-point finder: initial states of the RNN cell
    fp_iters: Count = 100
    import_runs: Count = 5
    # the real-model item: a pretrained LM ("spec": the bench transformer, for tests) and its batch
    real_model: str = "pretrained:smollm2-135m"
    real_batch: tuple[Count, Count] = (8, 128)
    seed: Seed = 0

    @field_validator("model")
    @classmethod
    def _model(cls, name: str) -> str:
        return name if name == "spec" else check_model_name(name)

    @field_validator("real_model")
    @classmethod
    def _real_model(cls, name: str) -> str:
        return name if name == "spec" else check_model_name(name)

    @field_validator("only")
    @classmethod
    def _items(cls, only: list[str]) -> list[str]:
        for item in only:
            if item not in ITEMS:
                raise ValueError(unknown_name_error("benchmark item", item, ITEMS).args[0])
        return only


# ----------------------------------------------------------------- timing
class Bench:
    """Collects rows (printed table) and criteria (metrics.json) of one benchmark run."""

    def __init__(self, result: Result):
        self.result = result
        self.rows: list[dict] = []

    def times(self, item: str, label: str, times: dict[str, list[float]]) -> None:
        for name, ts in times.items():
            self.rows.append(
                {
                    "item": item,
                    "case": label,
                    "variant": name,
                    "median_ms": 1e3 * statistics.median(ts),
                }
            )

    def target(
        self,
        name: str,
        value: float | None,
        description: str,
        *,
        op: str | None = None,
        threshold: float | None = None,
    ) -> None:
        """Record ``value`` against the target ``name`` (op and threshold from :data:`TARGETS`)."""
        if op is None or threshold is None:
            op, threshold = TARGETS[name]
        self.result.add_criterion(
            name, value, op, threshold, kind="target", description=description
        )
        shown = "not measured" if value is None else f"{value:.3f}"
        log.info("%-48s %12s %2s %-8.3g %s", name, shown, op, threshold, description[:90])

    def not_measured(self, name: str, description: str, why: str) -> None:
        self.target(name, None, f"{description} [not measured: {why}]")


# ----------------------------------------------------------------- models
def _models(config: Config):
    """(transformer Model, rnn Model) for the benchmark."""
    if config.model != "spec":
        tf = interp.load_model(config.model, device="cpu")
    else:
        spec = TransformerSpec(
            n_layers=config.n_layers,
            d_model=config.d_model,
            n_heads=config.n_heads,
            n_ctx=config.n_ctx,
            d_vocab=config.d_vocab,
            init_seed=config.seed,
        )
        tf = Model(
            build_transformer(spec),
            backend="tl",
            kind="transformer",
            model_id="bench-transformer",
            spec={"builder": "transformer", "spec": spec.model_dump(mode="json")},
        )
    rnn_spec = RNNSpec(
        cell=config.rnn_cell,
        d_hidden=config.rnn_hidden,
        d_vocab=config.d_vocab,
        init_seed=config.seed,
    )
    rnn = interp.wrap(HookedRNN(rnn_spec), model_id="bench-rnn")
    for m in (tf, rnn):
        m.module.eval()
    torch.manual_seed(config.seed)
    return tf, rnn


def _hf_causal(config: Config, arch: str, path: Path, T: int):
    """A GPT-2- or Llama-shaped causal LM of the bench's sizes, random weights, saved and loaded
    (the way a user loads a checkpoint: a directory, no download)."""
    torch.manual_seed(config.seed)
    d, L, H, V = config.d_model, config.n_layers, config.n_heads, config.d_vocab
    if arch == "gpt2":
        model = tr.GPT2LMHeadModel(
            tr.GPT2Config(vocab_size=V, n_embd=d, n_layer=L, n_head=H, n_positions=T)
        )
    else:
        kv = H // 2 if H % 2 == 0 else H  # grouped-query attention where the head count allows
        model = tr.LlamaForCausalLM(
            tr.LlamaConfig(
                vocab_size=V,
                hidden_size=d,
                num_hidden_layers=L,
                num_attention_heads=H,
                num_key_value_heads=kv,
                intermediate_size=4 * d,
                max_position_embeddings=T,
            )
        )
    model.save_pretrained(path)
    return interp.load_model(str(path), device="cpu")


def _tokens(vocab: int, shape: tuple[int, ...], seed: int):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _tf_hooks(m) -> list[str]:
    """The benchmark's chosen hooks: hook_z and resid_post of every layer, in execution order."""
    return [m.hook(kind, layer) for layer in range(m.n_layers) for kind in ("z", "resid_post")]


def _resid_hooks(m) -> list[str]:
    """Every block's ``hook_resid_post`` (memory, disk: one activation per layer)."""
    return [m.hook("resid_post", layer) for layer in range(m.n_layers)]


def resid_store(config: Config, tf, root: Any, n: int | None = None):
    """``(hook, store)``: the last block's resid_post of ``n`` (default ``memory_items // 2``)
    sequences, collected into a four-shard store under ``root`` (the input of the SAE and
    feature-page items)."""
    B, T = config.compute_batch
    hook = tf.hook("resid_post", -1)
    n = max(1, config.memory_items // 2 if n is None else n)
    x = _tokens(tf.cfg.d_vocab, (n, min(T, tf.cfg.n_ctx)), config.seed)
    with torch.no_grad():
        store = interp.collect(
            tf, x, [hook], batch_size=B, out=root / "s", shard_size=max(1, len(x) // 4)
        )
    return hook, store
