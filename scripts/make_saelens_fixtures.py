"""Write tiny SAEs with the real ``sae-lens`` package, as test fixtures for our SAELens reader.

``tests/sae/test_files.py`` checks that :func:`interp.sae.SAE.load` reads these files and
encodes / decodes exactly as SAELens did. The package pins ``transformer-lens<4``, so it
lives in its own virtual environment, never in the project's::

    python3 -m venv /tmp/saelens-venv
    /tmp/saelens-venv/bin/pip install torch==2.13.0   # the CPU build, first
    /tmp/saelens-venv/bin/pip install sae-lens
    /tmp/saelens-venv/bin/python scripts/make_saelens_fixtures.py

For each architecture (``standard``, ``topk``, ``jumprelu``) it writes, under
``tests/sae/fixtures/<architecture>/``: SAELens's own ``save_model`` output (``cfg.json``,
``sae_weights.safetensors``), and with numpy ``x.npy`` (an input batch ``[n, d_in]``),
``feature_acts.npy`` (``sae.encode(x)``, ``[n, d_sae]``) and ``sae_out.npy``
(``sae.decode(sae.encode(x))``, ``[n, d_in]``), plus ``versions.json`` naming the packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import sae_lens
import torch
from sae_lens import (
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)

D_IN, D_SAE, N_ROWS, K = 8, 16, 6, 4
HOOK = "blocks.0.hook_resid_post"
OUT = Path(__file__).resolve().parents[1] / "tests" / "sae" / "fixtures"


def build(architecture: str, g: torch.Generator):
    """A SAELens SAE of ``architecture`` with seeded random weights (biases and thresholds
    non-zero, so the pre-bias and the threshold comparison are exercised)."""
    common = dict(d_in=D_IN, d_sae=D_SAE, dtype="float32", device="cpu", apply_b_dec_to_input=True)
    if architecture == "standard":
        sae = StandardSAE(StandardSAEConfig(**common))
    elif architecture == "topk":
        sae = TopKSAE(TopKSAEConfig(k=K, **common))
    else:
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    sae.cfg.metadata.hook_name = HOOK
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=g) / D_IN**0.5)
        sae.W_dec.copy_(torch.randn(D_SAE, D_IN, generator=g) / D_SAE**0.5)
        sae.b_enc.copy_(0.1 * torch.randn(D_SAE, generator=g))
        sae.b_dec.copy_(0.5 * torch.randn(D_IN, generator=g))
        if architecture == "jumprelu":
            sae.threshold.copy_(0.05 + 0.3 * torch.rand(D_SAE, generator=g))  # > 0
    return sae


def main() -> None:
    g = torch.Generator().manual_seed(0)
    for architecture in ("standard", "topk", "jumprelu"):
        sae = build(architecture, g)
        out = OUT / architecture
        sae.save_model(out)
        x = torch.randn(N_ROWS, D_IN, generator=g)  # [n, d_in]
        with torch.no_grad():
            f = sae.encode(x)  # [n, d_sae]
            x_hat = sae.decode(f)  # [n, d_in]
        assert (f != 0).any(), architecture
        np.save(out / "x.npy", x.numpy())
        np.save(out / "feature_acts.npy", f.numpy())
        np.save(out / "sae_out.npy", x_hat.numpy())
        (out / "versions.json").write_text(
            json.dumps({"sae_lens": sae_lens.__version__, "torch": torch.__version__})
        )
        print(architecture, sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main()
