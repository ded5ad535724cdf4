"""Dashboard panel of the ``reversal`` analysis: reads a saved result, never a model.

Asking the models questions is live work (beam search on a loaded model), so it lives on
the Explore page, which offers it for every reversal fact model; this panel shows what to
ask and how each model did."""

from __future__ import annotations

from interp.analyses.reversal import OBJECTIVE_NAMES


def dashboard(result, st) -> None:
    """The run's models with their headline accuracies, and example questions to ask them on
    the Explore page (regenerated from the facts config the run saved)."""
    from interp.data.reversal import FactsConfig
    from interp.models.recipes.reversal import example_questions

    models = result.metrics.get("models") or []
    if not models:
        st.info("This run lists no models.")
        return
    summary = result.metrics.get("summary") or {}
    st.subheader("Models of this run")
    rows = []
    for mm in models:
        s = summary.get(f"{mm['variant']}/{mm['objective']}", {})
        rows.append(
            {
                "model": mm["name"],
                "objective": OBJECTIVE_NAMES.get(mm["objective"], mm["objective"]),
                "facts": mm["variant"],
                "seed": mm["seed"],
                "trained direction (acc.)": s.get("same_direction_train"),
                "reversed, order swapped (acc.)": s.get("reverse_train"),
                "reversed, in place (acc.)": s.get("reverse_in_place_train"),
                "chance": s.get("chance"),
                "training steps": mm.get("train_steps"),
            }
        )
    st.dataframe(rows, hide_index=True)
    st.subheader("Ask the models")
    lines = []
    for variant, facts in (result.metrics.get("facts") or {}).items():
        for q, what in example_questions(FactsConfig(**facts)):
            lines.append(f"- `{q}` ({variant}-level; {what})")
    st.markdown(
        "Entities and descriptions are generated (fictitious). Ask the models of this run these "
        "questions on the **Explore a model** page (pick one of the models above; it answers with "
        "its five likeliest completions):\n\n" + "\n".join(lines)
    )
