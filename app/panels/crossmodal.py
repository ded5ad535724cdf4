"""Dashboard panel of the ``crossmodal`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """Pick a test sample and see its image, question and knockout curves."""
    from interp.plotting import crossmodal as plots

    a = result.arrays
    onset, ci = (
        result.metrics.get("onset_layer") or {},
        result.metrics.get("onset_layer_ci95") or {},
    )
    if onset:
        shown = [
            n
            for n in ("image->question", "object->question", "question->last", "image->last")
            if n in onset
        ]
        st.caption(
            "Onset layer (first window whose drop reaches half the edge's largest drop), 95% "
            "bootstrap interval over the analysed questions: "
            + "; ".join(f"{n} {onset[n]:.0f} [{ci[n][0]:.1f}, {ci[n][1]:.1f}]" for n in shown)
        )
    at_chance = result.metrics.get("types_at_chance") or []
    if at_chance:
        st.warning(
            f"Answered no better than chance: {', '.join(at_chance)}. The knockout curves of "
            "these question types describe guesses, not knowledge."
        )
    if "sample_questions" not in a or len(a["sample_questions"]) == 0:
        st.info("This run stored no samples.")
        return
    st.subheader("One test question")
    labels = [
        f"{i}: [{t}] {q} -> {ans}"
        for i, (t, q, ans) in enumerate(
            zip(a["sample_types"], a["sample_questions"], a["sample_answers"], strict=True)
        )
    ]
    choice = st.selectbox("test sample", labels, index=0)
    i = labels.index(choice)
    cols = st.columns(2)
    L = a["sample_last_attention"].shape[1]
    layer = cols[0].slider("layer (attention of the last position)", 0, L - 1, 0) if L > 1 else 0
    cols[0].plotly_chart(
        plots.attention_on_image(
            a["sample_images"][i],
            a["sample_last_attention"][i],
            str(a["sample_questions"][i]),
            layer=layer,
            object_patches=a["sample_object_patches"][i],
        ),
        width="stretch",
    )
    names = [str(n) for n in a["edge_names"]]
    cols[1].plotly_chart(
        plots.edge_curves(
            a["sample_scores"][i],
            names,
            int(result.config.get("window", 1)),
            title="Knockout curves for this question",
        ),
        width="stretch",
    )
