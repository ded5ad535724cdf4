"""The "Features" page: SAE feature pages saved in runs, searched by latent id or by a promoted
token.

A run has feature pages when its result holds ``metrics["features"]`` and the ``features_*``
arrays (:meth:`interp.sae.features.FeaturePages.to_result`). The page only reads them and
calls :mod:`interp.plotting.features`: a latent's density and activation histogram, the
tokens it promotes and suppresses, and its top contexts with each token highlighted in
proportion to the latent's activation there.
"""

from __future__ import annotations

import streamlit as st
from common import guard, load_result, plain, select_run

from interp.plotting import features as plots
from interp.runs import list_runs
from interp.utils import read_json, runs_dir

HOW_TO = (
    "No runs with SAE feature pages yet. Make them from Python: "
    "`interp.sae.features.feature_pages(sae, store, hook, model=m).to_result(result)` adds the "
    "pages to a result, and `result.save(runs_dir / '<experiment>' / '<run>')` puts it where this "
    "page looks."
)
QUERY = "features_query"
MAX_MATCHES = 50


def feature_runs(runs: list) -> list:
    """The runs whose ``metrics.json`` holds ``features`` (read without loading the arrays)."""
    out = []
    for r in runs:
        try:
            if "features" in read_json(r.path / "metrics.json"):
                out.append(r)
        except (OSError, ValueError):
            continue
    return out


def features_page() -> None:
    st.title("Features")
    st.markdown(
        "What each latent of a sparse autoencoder does on a stored activation set: how often it "
        "fires, how strongly, the tokens its decoder direction promotes and suppresses through the "
        "unembedding, and the contexts where it fires hardest."
    )
    with guard("The list of runs could not be read"):
        root = runs_dir()
        runs = feature_runs(list_runs(root=root))
        if not runs:
            st.info(HOW_TO)
            st.caption(f"Runs are read from `{root}` (set `INTERP_RUNS` to change it).")
            return
        run = select_run(runs, "Run")
        try:
            # interp.sae imports torch: only once there is a run with pages to read
            from interp.sae.features import FeaturePages

            pages = FeaturePages.from_result(load_result(run.path))
        except Exception as e:
            st.error(f"The feature pages of run {run.id} could not be read: {plain(e)}")
            return
        show_pages(pages)


def show_pages(pages) -> None:
    """Summary, search and one latent's page."""
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Latents", pages.d_sae)
    c2.metric("Token positions", pages.n_tokens)
    c3.metric("Dead latents", int((pages.density == 0).sum()))
    c4.metric("Mean density", f"{float(pages.density.mean()):.3g}" if pages.d_sae else "n/a")
    st.caption(
        f"Hook `{pages.hook}` · top {pages.k} contexts of ±{pages.context} tokens per latent"
    )
    if pages.note:
        st.caption(pages.note)
    query = st.text_input("Search latents: a latent id, or a token they promote", key=QUERY)
    latent = choose_latent(pages, query)
    if latent is not None:
        with guard(f"Latent {latent} could not be shown"):
            latent_page(pages, latent)


def choose_latent(pages, query: str) -> int | None:
    if not query.strip():
        return int(
            st.number_input(
                "Latent", min_value=0, max_value=max(pages.d_sae - 1, 0), value=0, step=1
            )
        )
    matches = pages.search(query, limit=MAX_MATCHES)
    if not matches:
        why = (
            ""
            if pages.promoted.shape[1]
            else " (these pages have no logit effects: a token search needs them)"
        )
        st.warning(
            f"No latent matches {query.strip()!r}: give an id below {pages.d_sae} or a token a "
            f"latent promotes{why}."
        )
        return None
    if len(matches) > 1:
        more = f" (the first {MAX_MATCHES} shown)" if len(matches) == MAX_MATCHES else ""
        st.caption(f"{len(matches)} latents match {query.strip()!r}{more}")
    return int(st.selectbox("Matching latents", matches, key=f"match-{query}"))


def latent_page(pages, i: int) -> None:
    st.subheader(f"Latent {i}")
    st.metric("Density (fraction of positions > 0)", f"{float(pages.density[i]):.4g}")
    st.plotly_chart(
        plots.histogram_figure(
            pages.hist_edges, pages.hist_counts[i], float(pages.density[i]), f"of latent {i}"
        ),
        key=f"hist-{i}",
    )
    if pages.promoted.shape[1]:
        up = [pages.token_str(t) for t in pages.promoted[i]]
        down = [pages.token_str(t) for t in pages.suppressed[i]]
        st.markdown("**Promotes** " + ", ".join(f"`{s!r}`" for s in up))
        st.markdown("**Suppresses** " + ", ".join(f"`{s!r}`" for s in down))
        st.plotly_chart(
            plots.logit_figure(
                up, pages.promoted_values[i], down, pages.suppressed_values[i], f"of latent {i}"
            ),
            key=f"logits-{i}",
        )
    else:
        st.info(f"Logit effects: {pages.note or 'not computed'}.")
    contexts = pages.contexts(i)
    st.markdown(f"**Top contexts** ({len(contexts)})")
    if not contexts:
        st.caption("This latent never fires on the stored activations (a dead latent).")
    top = max((c["act"] for c in contexts), default=0.0)
    for c in contexts:
        st.caption(f"item {c['item']}, position {c['pos']}: activation {c['act']:.4g}")
        st.markdown(
            plots.context_html(c["strings"], c["acts"], top, c["center"]), unsafe_allow_html=True
        )
