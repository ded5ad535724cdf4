"""Dashboard panel of the ``reversal`` analysis: reads a saved result, never a model."""

from __future__ import annotations

from interp.analyses.reversal import OBJECTIVE_NAMES, TRAINED, _load_for_dashboard, top_completions


def dashboard(result, st) -> None:
    """Ask a question about a fictitious entity; every model of the run answers (top 5)."""
    import pandas as pd

    from interp.data.reversal import FactsConfig, make_facts

    models = result.metrics.get("models") or []
    if not models:
        st.info("This run lists no models.")
        return
    st.subheader("Ask the models")
    variant = st.selectbox("Fact variant", sorted({mm["variant"] for mm in models}), key="reversal_variant")
    facts = make_facts(FactsConfig(**result.metrics["facts"][variant]))
    tries = []
    for g, d in (("name_first", "d2n"), ("name_first", "n2d"), ("desc_first", "n2d"), ("both", "d2n")):
        e = facts.example(facts.group_pairs(g)[0], facts.templates_of(d, "train")[0])
        kind = "trained direction" if d in TRAINED[g] else "REVERSED, never trained"
        tries.append(f"`{' '.join(e.prompt)}` → *{' '.join(e.target)}* ({g} fact, {kind})")
    st.markdown("Entities and descriptions are generated (fictitious). Try for example:\n\n"
                + "\n".join(f"- {t}" for t in tries))
    default = tries[0].split("`")[1]
    question = st.text_input("Prompt (the completion follows it; only words of the facts' vocabulary are "
                             "known)", value=default, key="reversal_prompt")
    n_name, n_desc = len(facts.pairs[0].name), len(facts.pairs[0].desc)
    length = st.number_input(f"Completion length in tokens (names: {n_name}, descriptions: {n_desc})",
                             min_value=1, max_value=8, value=n_name, key="reversal_length")
    load = st.cache_resource(show_spinner="loading model")(_load_for_dashboard)
    rows = []
    for mm in [mm for mm in models if mm["variant"] == variant]:
        try:
            m = load(mm["path"])
        except Exception as e:  # a model missing from the cache is a message, not a traceback
            st.warning(f"{mm['name']} is not available ({type(e).__name__}: {e}). Re-run "
                       f"`interp run reversal --preset ...` to train it into the cache.")
            continue
        vocab = m.tokenizer.get_vocab()
        words = question.split()
        unknown = [w for w in words if w not in vocab]
        if unknown:
            st.warning(f"unknown words (not in the facts' vocabulary): {', '.join(unknown)}")
            return
        ids = [m.tokenizer.bos_token_id] + [vocab[w] for w in words]
        if len(ids) + int(length) > min(m.cfg.n_ctx, facts.seq_len):
            st.warning(f"prompt too long: prompt and completion must fit {min(m.cfg.n_ctx, facts.seq_len)} tokens")
            return
        for rank, (toks, lp) in enumerate(top_completions(m, ids, int(length), k=5, pad_to=facts.seq_len)):
            rows.append({"model": f"{OBJECTIVE_NAMES.get(mm['objective'], mm['objective'])} (seed {mm['seed']})",
                         "rank": rank + 1, "completion": m.tokenizer.decode(toks), "log-prob": round(lp, 3)})
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
