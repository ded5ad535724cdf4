"""Sparse autoencoders: ReLU+L1, TopK and JumpReLU kinds, a trainer, SAELens's files (``files.py``).

from interp.sae import SAE, SAEConfig, SAETrainConfig, train_sae, KINDS
sae, report = train_sae(x, SAEConfig(d_in=x.shape[-1], d_sae=200, kind="relu"))
sae.save(path); SAE.load(path)    # SAELens's cfg.json + sae_weights.safetensors, both ways
with spliced(m, {"blocks.0.hook_resid_post": sae}, error_term=True):   # the SAE in the forward pass
    out, acts = interp.trace(m, x, capture=["blocks.0.hook_resid_post.hook_sae_acts_post"])
"""

from interp.sae.metrics import loss_recovered
from interp.sae.model import KINDS, SAE, SAEConfig, register_kind
from interp.sae.splice import spliced
from interp.sae.train import SAETrainConfig, evaluate_sae, resample_dead, train_sae

__all__ = [
    "KINDS",
    "SAE",
    "SAEConfig",
    "SAETrainConfig",
    "evaluate_sae",
    "loss_recovered",
    "register_kind",
    "resample_dead",
    "spliced",
    "train_sae",
]
