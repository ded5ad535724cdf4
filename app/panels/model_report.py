"""Dashboard panel of the ``model_report`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """The model against a unigram baseline, and the heads whose ablation costs most."""
    m = result.metrics
    if "clean_loss" in m:
        st.subheader("Loss on held-out text")
        cols = st.columns(3)
        cols[0].metric("model", f"{m['clean_loss']:.3f} nats")
        if m.get("unigram_loss") is not None:
            cols[1].metric("unigram baseline", f"{m['unigram_loss']:.3f} nats")
        lens = m.get("logit_lens_loss") or []
        if lens:
            cols[2].metric("logit lens at the embedding", f"{lens[0]:.3f} nats")
    top = m.get("top_ablation_heads") or []
    if top:
        st.subheader("Heads whose ablation costs most")
        st.dataframe(
            [
                {"head": f"L{h['layer']}H{h['head']}", "loss increase (nats)": h["loss_increase"]}
                for h in top
            ],
            hide_index=True,
        )
    if m.get("prompt_tokens"):
        st.caption(
            "Attention patterns are of the prompt: "
            + " | ".join(str(t) for t in m["prompt_tokens"])
        )
