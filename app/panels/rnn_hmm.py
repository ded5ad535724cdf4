"""Dashboard panel of the ``rnn_hmm`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """Custom panel: fidelity table, kick-neuron ablation and metrics over training (reads the
    result only)."""
    m = result.metrics
    st.subheader("Emission fidelity")
    st.table(
        [
            {"quantity": f"frequency of output {k}", "RNN": r, "HMM": h}
            for k, (r, h) in enumerate(
                zip(
                    m.get("output_frequencies_rnn", []),
                    m.get("output_frequencies_hmm", []),
                    strict=True,
                )
            )
        ]
        + [
            {
                "quantity": f"switch rate (outputs {m.get('switch_rate_frequent_outputs')})",
                "RNN": m.get("switch_rate_rnn"),
                "HMM": m.get("switch_rate_hmm"),
            },
            {
                "quantity": "switch rate (all outputs)",
                "RNN": m.get("switch_rate_all_outputs_rnn"),
                "HMM": m.get("switch_rate_all_outputs_hmm"),
            },
            {
                "quantity": "Sinkhorn divergence to fresh HMM samples",
                "RNN": m.get("sinkhorn_rnn_vs_hmm"),
                "HMM": m.get("sinkhorn_hmm_vs_hmm"),
            },
        ]
    )
    abl = m.get("kick_ablation") or {}
    if abl:
        st.subheader("Kick neurons")
        kicks = "; ".join(
            f"{d} {abl['kick_units'][d]}: switch rate {v:+.1%}"
            for d, v in (abl.get("kick_deltas") or {}).items()
        )
        st.write(
            "Kick neurons from connectivity (top presynaptic weights onto the destination "
            f"cluster's population), zeroed at every step: {kicks}. Activity candidates "
            f"{abl['activity_units']}: "
            f"{abl['activity_delta']:+.1%}; random sets: {min(abl['random_deltas']):+.1%} to "
            f"{max(abl['random_deltas']):+.1%}."
        )
    if m.get("training"):
        st.subheader("Metrics over training")
        st.dataframe(m["training"])
    st.caption(f"Seeds failed to train: {m.get('seeds_failed')}")
