"""The live "Explore a model" page: type a prompt, see what a model does with it.

Models load once per server process (``st.cache_resource``) and only from the cache or
a local directory: this page never trains. Heavy panels run in ``st.fragment`` so that
changing one control reruns only that panel.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULT_PROMPT = "def add(a, b):\n    return a + b\n\nx = add(1, 2)\nprint(x)\n"


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def get_model(name: str) -> Any:
    import interp

    return interp.load_model(name)


def built_models() -> list[str]:
    from interp.models import zoo

    return [f"zoo:{n}" for n in zoo.names() if zoo.is_built(n)]


@st.cache_data(show_spinner="Tracing…", max_entries=32)
def _probe(name: str, prompt: str, target: str, ablate: bool):
    from interp.methods.prompt_probe import probe_prompt

    return probe_prompt(get_model(name), prompt, target or None, ablate=ablate)


def explorer_page() -> None:
    from interp.plotting import explorer as plots

    st.title("Explore a model")
    st.markdown("Pick a trained model, type a prompt, and see its tokens, predictions, attention patterns, "
                "logit lens and the effect of ablating each head. Nothing is trained here: zoo models must "
                "be built first (`interp zoo build code-lm-tiny`).")
    options = built_models()
    c1, c2 = st.columns([2, 3])
    choice = c1.selectbox("Model", options + ["a local directory…"], index=0)
    name = choice
    if choice == "a local directory…":
        name = c2.text_input("Directory saved by interp or save_pretrained", "")
        if not name:
            st.info("Enter a directory to load." if options else
                    "No zoo model is built yet. Build one with `interp zoo build code-lm-tiny`, "
                    "or enter a directory saved by interp or by save_pretrained.")
            return
    try:
        m = get_model(name)
    except Exception as e:
        st.error(f"Could not load {name!r}: {type(e).__name__}: {e}")
        return
    if m.tokenizer is None:
        st.error(f"{m.model_id} has no tokenizer, so it cannot read a typed prompt.")
        return
    st.caption(repr(m))
    prompt = st.text_area("Prompt", DEFAULT_PROMPT, height=140)
    target = st.text_input("Target token to track (empty: the model's top prediction)", "")
    try:
        probe = _probe(name, prompt, target, ablate=False)
    except Exception as e:
        st.error(f"Could not run the prompt: {type(e).__name__}: {e}")
        return
    st.subheader("Tokens")
    st.code(" | ".join(repr(t)[1:-1] for t in probe.tokens), language=None)
    st.subheader("Next-token predictions")
    st.plotly_chart(plots.predictions_figure(probe.top_tokens, probe.top_probs), key="preds")
    if probe.patterns is None:
        st.info(f"{m.model_id} is not a transformer: attention, lens and head panels need one.")
        return
    attention_panel(probe)
    st.subheader(f"Logit lens (target {probe.target!r})")
    st.plotly_chart(plots.lens_figure(probe.lens_probs, probe.tokens, probe.lens_target_prob, probe.target),
                    key="lens")
    ablation_panel(name, prompt, target)


@st.fragment
def attention_panel(probe) -> None:
    from interp.plotting import explorer as plots

    st.subheader("Attention patterns")
    L, H = probe.patterns.shape[:2]
    layer = st.selectbox("Layer", list(range(L)), format_func=lambda l: f"layer {l}", key="att_layer")
    st.plotly_chart(plots.heads_grid(probe.patterns[layer], probe.tokens), key=f"grid{layer}")
    head = st.selectbox("Enlarge head", list(range(H)), format_func=lambda h: f"head {h}", key="att_head")
    st.plotly_chart(plots.head_pattern(probe.patterns[layer, head], probe.tokens, f"L{layer}H{head}"),
                    key=f"head{layer}-{head}")


@st.fragment
def ablation_panel(name: str, prompt: str, target: str) -> None:
    from interp.plotting import explorer as plots

    st.subheader("Per-head ablation")
    if not st.toggle("Zero-ablate each head and measure the target's logit", value=False, key="ablate"):
        st.caption("Runs one forward per head.")
        return
    try:
        probe = _probe(name, prompt, target, ablate=True)
    except Exception as e:
        st.error(f"Ablation failed: {type(e).__name__}: {e}")
        return
    st.plotly_chart(plots.head_effect_figure(probe.head_effect, probe.target), key="ablation")
