"""Dashboard panel of the ``bigram`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """Tables of the lambda sweep and the necessity/sufficiency comparison (read-only)."""
    from interp.plotting import bigram as plots

    st.subheader("Lambda sweep")
    st.dataframe(plots.sweep_rows(result.metrics.get("sweep", [])))
    st.subheader("Necessity and sufficiency")
    st.dataframe(plots.surprisal_rows(result.metrics.get("surprisal", {})))
    overlap = result.metrics.get("overlap") or {}
    if overlap:
        st.write(f"Overlap with the optimal-pruning mask: {overlap['observed']} weights "
                 f"({overlap['observed_frac_of_subnetwork']:.1%} of the subnetwork); row-shuffle null "
                 f"{overlap['null_mean']:.1f} ± {overlap['null_std']:.1f}, p = {overlap['p_value']:.2g} "
                 f"({overlap['n_null']} shuffles)")
