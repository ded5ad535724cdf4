"""Dashboard panel of the ``sae`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """The SAE's held-out numbers, and where to browse its latents."""
    m = result.metrics
    rows = [
        {"measure": k, "value": m.get(k)}
        for k in (
            "loss_recovered",
            "l0",
            "fvu",
            "dead_frac",
            "dense_frac",
            "ce_clean",
            "ce_spliced",
            "ce_zero",
            "train_fvu",
        )
    ]
    st.subheader(f"SAE on {m.get('hook', '?')}")
    st.dataframe(rows, hide_index=True)
    if "features" in m:
        st.markdown("Browse its latents (top contexts, promoted tokens) on the **Features** page.")
