"""Zoo LM for the bigram-subnetwork analysis at a second size: a 6-layer code LM.

Same corpus, tokenizer size and training loop as ``zoo:code-lm`` (4 layers), with more
layers and steps, so the "bigram subnetwork lives in the first MLP" finding can be tested
at more than one depth (``experiments/bigram.yaml``, full preset).
"""

from __future__ import annotations

from interp.models.recipes import LMRecipe, train_lm
from interp.models.train import TrainConfig
from interp.models.transformer import TransformerSpec
from interp.models.zoo import recipe

CODE_LM_6L = LMRecipe(
    name="code-lm-6l",
    max_chars=None,
    vocab_size=2048,
    spec=TransformerSpec(n_layers=6, d_model=128, n_heads=4, n_ctx=128, d_vocab=2048),
    train=TrainConfig(steps=5000, batch_size=16, lr=1e-3, warmup=100),
)


@recipe("code-lm-6l", CODE_LM_6L, "6-layer d128 code LM on the whole stdlib, BPE 2048, 5000 steps (~15-25 min on CPU)")
def _code_lm_6l(cfg: LMRecipe):
    return train_lm(cfg)
