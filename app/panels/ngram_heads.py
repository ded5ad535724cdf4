"""Dashboard panel of the ``ngram_heads`` analysis: reads a saved result, never a model."""

from __future__ import annotations

from interp.results import Result


def dashboard(result: Result, st) -> None:
    """Custom panel: the per-model table (accuracy, true TVD, the paper's 2x TVD) and the best
    head."""
    m = result.metrics
    if "accuracy" not in m:
        return
    st.subheader("Models and baselines on unseen DFAs")
    st.caption(m.get("tvd_note", ""))
    rows = [
        {
            "model": k,
            "accuracy": m["accuracy"][k],
            "TVD": m["tvd"][k],
            "2x TVD (as the paper's code)": m["tvd_l1_as_in_paper"][k],
        }
        for k in m["accuracy"]
    ]
    st.dataframe(rows)
    best = m.get("best_ngram_head") or {}
    if "layer" in best:
        st.markdown(
            f"Best n-gram head in layers >= 1: **L{best['layer']}H{best['head']}** "
            f"({best['n']}-gram), "
            f"attention mass {best['mass']:.2f}, {best['ratio']:.2f}x uniform causal attention."
        )
    abl = m.get("ablation") or {}
    if abl:
        st.markdown(
            f"Ablating the top heads {abl['top_heads']} ({abl['how']}) drops accuracy by "
            f"{abl['drop_top']:.3f}; random head sets by {abl['drop_random_mean']:.3f} on average."
        )
