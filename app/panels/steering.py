"""Dashboard panel of the ``steering`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """Completions side by side, the topic sweep, CAA's three points and the SAE latent."""
    m = result.metrics
    examples = m.get("examples") or []
    if examples:
        st.subheader(f"Completions on {m.get('model', '?')}, steered at {m.get('hook', '?')}")
        for ex in examples:
            st.markdown(f"**Prompt:** `{ex['prompt']}`")
            cols = st.columns(len(ex) - 1)
            for col, (label, text) in zip(
                cols, [(k, v) for k, v in ex.items() if k != "prompt"], strict=False
            ):
                col.caption(label)
                col.code(text, language=None)
    if m.get("coefs"):
        st.subheader(f"ActAdd, topic {m.get('topic')!r}")
        rows = [
            {
                "coefficient": c,
                "topic log-prob (ActAdd)": r,
                "topic log-prob (random)": q,
                "topic-word share": s,
                "off-topic loss": loss,
            }
            for c, r, q, s, loss in zip(
                m["coefs"],
                m["topic_relevance"],
                m["random_relevance"],
                m["topic_share"],
                m["heldout_loss"],
                strict=True,
            )
        ]
        st.dataframe(rows, hide_index=True)
    caa = m.get("caa")
    if caa:
        st.subheader("CAA on held-out A/B questions")
        cols = st.columns(3)
        for col, key, label in zip(
            cols, ("minus", "zero", "plus"), ("-c", "0", "+c"), strict=False
        ):
            col.metric(f"P(matching) at {label}", f"{caa[key]:.3f}")
        st.caption(
            f"CAA vector norm {m.get('caa_vector_norm', float('nan')):.3g}; saved as "
            "arrays/caa_vector.npy (the explorer's steering panel takes it)."
        )
    sae = m.get("sae")
    if sae:
        st.subheader(
            f"SAE latent {sae['latent']} (active on {100 * sae['frequency']:.1f}% of tokens)"
        )
        st.markdown("Promoted tokens: " + ", ".join(f"`{t}`" for t in sae.get("promoted", [])))
        st.caption(f"SAE FVU {sae['fvu']:.3f}, L0 {sae['l0']:.1f}")
