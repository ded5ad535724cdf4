"""Dashboard panel of the ``bigram`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """Tables of the lambda sweep and the necessity/sufficiency comparison (read-only)."""
    from interp.plotting import bigram as plots

    st.subheader("Lambda sweep")
    st.dataframe(plots.sweep_rows(result.metrics.get("sweep", [])))
    floor = result.metrics.get("zero_mask_floor")
    if floor:
        st.write(
            f"Zero-mask floor (every maskable weight removed; embedding -> unembedding only): "
            f"r = {floor['r']:.3f}, loss {floor['loss']:.3f} nats. The chosen subnetwork's r is "
            f"{result.metrics.get('chosen_r_minus_floor_r', float('nan')):+.3f} above it."
        )
    st.subheader("Necessity and sufficiency")
    st.dataframe(plots.surprisal_rows(result.metrics.get("surprisal", {})))
    rm = result.metrics.get("removal")
    if rm:
        st.write(
            f"Removing the subnetwork: {rm['subnetwork_removed']:.3f} nats; removing one of "
            f"{rm['n_random']} random same-structure sets: {rm['random_mean']:.3f} ± "
            f"{rm['random_std']:.3f} nats "
            f"(one-sided t-test p = {rm['p_t']:.2g}, exact rank p = {rm['p_rank']:.2g})"
        )
    overlap = result.metrics.get("overlap") or {}
    if overlap:
        st.write(
            f"Overlap with the optimal-pruning mask: {overlap['observed']} weights "
            f"({overlap['observed_frac_of_subnetwork']:.1%} of the subnetwork); row-shuffle null "
            f"{overlap['null_mean']:.1f} ± {overlap['null_std']:.1f}, p = {overlap['p_value']:.2g} "
            f"({overlap['n_null']} shuffles)"
        )
