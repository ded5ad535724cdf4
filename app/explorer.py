"""The live "Explore a model" page: type a prompt, see what a model does with it.

This is the one page that runs models, and only when the user picks one: models load once
per server process (``st.cache_resource``) and only from the cache or a local directory
(this page never trains). Heavy panels run in ``st.fragment`` so that changing one control
reruns only that panel.

The prompt opens on an example the chosen model reads well: the zoo recipe's ``prompts``
(Python for a code LM, template sentences for a circuit LM, fact questions for a reversal
model), or for a saved directory its recipe's prompts, else words of its own vocabulary.
The steering panel completes the prompt twice, unsteered and with a vector added (typed
contrastive prompts, a saved CAA vector or an SAE latent), and shows how the steering moved each
token's probability (:func:`interp.methods.steering.side_by_side`).
A reversal fact model (a zoo reversal recipe, or a directory whose ``interp_model.json``
holds ``recipe_config.facts``) also gets "Ask the fact model": the likeliest completions
of a question by beam search, run when the user presses the button.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from common import plain

import interp
from interp.data.reversal import FactsConfig, make_facts
from interp.models import pretrained, zoo
from interp.models.io import MODEL_FILE
from interp.plotting import explorer as explorer_plots
from interp.plotting import steering as steering_plots
from interp.utils import read_json

# The modules that run models (methods, sae, the reversal analysis and recipes) import torch and
# TransformerLens: they are imported inside the functions that use them, so the dashboard's other
# pages open without paying for them.

DEFAULT_PROMPT = "def add(a, b):\n    return a + b\n\nx = add(1, 2)\nprint(x)\n"
LOCAL = "a local directory…"
N_FALLBACK_WORDS = 12  # a word-level model without example prompts opens on its first words


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def get_model(name: str) -> Any:
    return interp.load_model(name)


# ------------------------------------------------------------------ which model, which prompt
def _zoo_recipe(name: str):
    if name.startswith("zoo:") and name[4:] in zoo.names():
        return zoo.get(name[4:])
    return None


def _saved_meta(name: str) -> dict:
    """``interp_model.json`` of a model directory ({} when there is none or it is unreadable)."""
    try:
        return read_json(Path(name).expanduser() / MODEL_FILE)
    except (OSError, ValueError):
        return {}


def built_models() -> list[str]:
    """Built zoo models, those with example prompts first, so the page opens on a model that
    reads text (alphabetical within each group); then the installed real pretrained models
    (loading one takes seconds: the page opens on it only when no zoo model is built)."""
    built = [n for n in zoo.names() if zoo.is_built(n)]
    ordered = [f"zoo:{n}" for n in sorted(built, key=lambda n: (not zoo.get(n).prompts, n))]
    return ordered + [f"pretrained:{n}" for n in pretrained.names() if pretrained.is_installed(n)]


def recipe_prompts(name: str) -> list[str]:
    """Example prompts of a zoo model, a real pretrained model, or of the recipe a saved
    directory was built from."""
    if name.startswith("pretrained:"):
        return (
            list(pretrained.get(name[len("pretrained:") :]).prompts)
            if name[11:] in pretrained.names()
            else []
        )
    r = _zoo_recipe(name)
    if r is None:
        recipe = _saved_meta(name).get("recipe")
        r = _zoo_recipe(f"zoo:{recipe}") if isinstance(recipe, str) else None
    return list(r.prompts) if r is not None else []


def fact_config(name: str) -> dict | None:
    """The ``FactsConfig`` (as a dict) a reversal fact model was trained on, else None."""
    r = _zoo_recipe(name)
    if r is not None:
        facts = getattr(r.config, "facts", None)
        return facts.model_dump(mode="json") if isinstance(facts, FactsConfig) else None
    facts = (_saved_meta(name).get("recipe_config") or {}).get("facts")
    try:
        return FactsConfig(**facts).model_dump(mode="json") if isinstance(facts, dict) else None
    except ValueError:
        return None


def unknown_tokens(tokenizer, text: str) -> list[str]:
    """Pieces of ``text`` the tokenizer maps to its unknown token (in order)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:  # a slow (Python) tokenizer has no offsets: name the token only
        return [str(tokenizer.unk_token)] * tokenizer.encode(text, add_special_tokens=False).count(
            unk
        )
    return [
        text[a:b]
        for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        if i == unk
    ]


def example_prompts(name: str, tokenizer) -> list[str]:
    """Prompts to offer for model ``name``: its recipe's, or its fact questions, or (a model
    without either) :data:`DEFAULT_PROMPT` when it tokenizes without unknown tokens, else the
    first words of the model's vocabulary."""
    prompts = recipe_prompts(name)
    if not prompts and (facts := fact_config(name)) is not None:
        from interp.models.recipes.reversal import example_questions

        prompts = [q for q, _ in example_questions(FactsConfig(**facts))]
    if prompts or tokenizer is None:
        return prompts
    if not unknown_tokens(tokenizer, DEFAULT_PROMPT):
        return [DEFAULT_PROMPT]
    special = set(tokenizer.all_special_ids)
    words = [
        w
        for w, i in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        if i not in special
    ]
    return [" ".join(words[:N_FALLBACK_WORDS])]


# ------------------------------------------------------------------ the page
@st.cache_data(show_spinner="Tracing…", max_entries=32)
def _probe(name: str, prompt: str, target: str, ablate: bool):
    from interp.methods.prompt_probe import probe_prompt

    return probe_prompt(get_model(name), prompt, target or None, ablate=ablate)


def explorer_page() -> None:
    """The page: pick a model, type (or pick) a prompt, then the panels on what the model does."""
    st.title("Explore a model")
    st.markdown(
        "Pick a trained model, type a prompt, and see its tokens, predictions, attention patterns, "
        "logit lens and the effect of ablating each head. Nothing is trained here: zoo models must "
        "be built first (`interp zoo build code-lm-tiny`)."
    )
    picked = pick_model()
    if picked is None:
        return
    name, m = picked
    prompt = prompt_box(name, m)
    if prompt is not None:
        prompt_panels(name, m, prompt)


def pick_model() -> tuple[str, Any] | None:
    """The model menu (built zoo and pretrained models, or a typed directory) and the loaded
    model; None, with a message saying why, when there is nothing to load or loading failed."""
    options = built_models()
    c1, c2 = st.columns([2, 3])
    choice = c1.selectbox("Model", options + [LOCAL], index=0)
    name = choice
    if choice == LOCAL:
        name = c2.text_input("Directory saved by interp or save_pretrained", "")
        if not name:
            st.info(
                "Enter a directory to load."
                if options
                else "No zoo model is built yet. Build one with `interp zoo build code-lm-tiny`, "
                "or enter a directory saved by interp or by save_pretrained."
            )
            return None
    try:
        m = get_model(name)
    except Exception as e:
        st.error(f"Could not load {name!r}: {plain(e)}")
        return None
    st.caption(repr(m))
    return name, m


def prompt_box(name: str, m: Any) -> str | None:
    """The prompt: an example for this model (a menu when it has several), editable; a warning
    for pieces the tokenizer does not know. A fact model also gets its question panel first.
    None when the model has no tokenizer to read a typed prompt."""
    prompts = example_prompts(name, m.tokenizer)
    if m.tokenizer is None:
        st.error(
            f"{m.model_id} has no tokenizer, so it cannot read a typed prompt."
            + (
                " It reads token ids; inputs it was trained on look like: "
                + ", ".join(f"`{p}`" for p in prompts)
                if prompts
                else ""
            )
        )
        return None
    facts = fact_config(name)
    if facts is not None:
        fact_panel(name, facts)
    pick = 0
    if len(prompts) > 1:
        pick = st.selectbox(
            "Example prompts for this model",
            range(len(prompts)),
            key=f"example-{name}",
            format_func=lambda i: prompts[i].replace("\n", " ⏎ ")[:80],
        )
    prompt = st.text_area(
        "Prompt", prompts[pick] if prompts else "", height=140, key=f"prompt-{name}-{pick}"
    )
    unknown = unknown_tokens(m.tokenizer, prompt)
    if unknown:
        st.warning(
            f"{len(unknown)} piece(s) of the prompt are unknown to this model's tokenizer and "
            f"read as {m.tokenizer.unk_token!r}: {', '.join(repr(u) for u in unknown[:8])}. "
            "Try an example prompt."
        )
    return prompt


def prompt_panels(name: str, m: Any, prompt: str) -> None:
    """Tokens and next-token predictions for the prompt; for a transformer also attention,
    logit lens, per-head ablation and steering."""
    target = st.text_input("Target token to track (empty: the model's top prediction)", "")
    try:
        probe = _probe(name, prompt, target, ablate=False)
    except Exception as e:
        st.error(f"Could not run the prompt: {plain(e)}")
        return
    st.subheader("Tokens")
    st.code(" | ".join(repr(t)[1:-1] for t in probe.tokens), language=None)
    st.subheader("Next-token predictions")
    st.plotly_chart(
        explorer_plots.predictions_figure(probe.top_tokens, probe.top_probs), key="preds"
    )
    if probe.patterns is None:
        st.info(f"{m.model_id} is not a transformer: attention, lens and head panels need one.")
        return
    attention_panel(probe)
    st.subheader(f"Logit lens (target {probe.target!r})")
    st.plotly_chart(
        explorer_plots.lens_figure(
            probe.lens_probs, probe.tokens, probe.lens_target_prob, probe.target
        ),
        key="lens",
    )
    ablation_panel(name, prompt, target)
    steering_panel(name, prompt)


@st.fragment
def attention_panel(probe) -> None:
    st.subheader("Attention patterns")
    L, H = probe.patterns.shape[:2]
    layer = st.selectbox(
        "Layer", list(range(L)), format_func=lambda i: f"layer {i}", key="att_layer"
    )
    st.plotly_chart(
        explorer_plots.heads_grid(probe.patterns[layer], probe.tokens), key=f"grid{layer}"
    )
    head = st.selectbox(
        "Enlarge head", list(range(H)), format_func=lambda h: f"head {h}", key="att_head"
    )
    st.plotly_chart(
        explorer_plots.head_pattern(probe.patterns[layer, head], probe.tokens, f"L{layer}H{head}"),
        key=f"head{layer}-{head}",
    )


@st.fragment
def ablation_panel(name: str, prompt: str, target: str) -> None:
    st.subheader("Per-head ablation")
    if not st.toggle(
        "Zero-ablate each head and measure the target's logit", value=False, key="ablate"
    ):
        st.caption("Runs one forward per head.")
        return
    try:
        probe = _probe(name, prompt, target, ablate=True)
    except Exception as e:
        st.error(f"Ablation failed: {plain(e)}")
        return
    st.plotly_chart(
        explorer_plots.head_effect_figure(probe.head_effect, probe.target), key="ablation"
    )


# ------------------------------------------------------------------ steering
VECTOR_SOURCES = ("contrastive prompts (ActAdd)", "a saved CAA vector (.npy)", "an SAE latent")


def build_steering(name: str, source: str, layer: int, coef: float, spec: dict) -> Any:
    """The :class:`~interp.methods.steering.Steering` the steering panel's controls describe."""
    from interp.methods import steering as S

    m = get_model(name)
    if source == VECTOR_SOURCES[0]:
        return S.build(m, "actadd", layer=layer, coef=coef, plus=spec["plus"], minus=spec["minus"])
    if source == VECTOR_SOURCES[1]:
        vector = np.load(Path(spec["path"]).expanduser())
        return S.build(m, "caa", layer=layer, coef=coef, vector=vector)
    from interp.sae.model import SAE

    return S.build(
        m,
        "sae_add",
        coef=coef,
        sae=SAE.load(Path(spec["path"]).expanduser()),
        latent=int(spec["latent"]),
    )


@st.cache_data(show_spinner="Generating, unsteered and steered…", max_entries=32)
def steer_prompt(
    name: str, prompt: str, source: str, layer: int, coef: float, spec: dict, length: int
) -> dict:
    """Both completions of ``prompt`` and the per-token probability shift (plain data)."""
    from interp.methods.steering import side_by_side

    out = side_by_side(
        get_model(name), prompt, build_steering(name, source, layer, coef, spec), length
    )
    return out.__dict__


@st.fragment
def steering_panel(name: str, prompt: str) -> None:
    """Steer the model while it completes the prompt: a layer, a vector and a coefficient;
    completions side by side and how the steering moved each steered token's probability."""
    st.subheader("Steering")
    m = get_model(name)
    if not m.n_layers or getattr(m.cfg, "attention_dir", "causal") != "causal":
        st.info("Steering generates text: it needs a causal transformer.")
        return
    c1, c2, c3 = st.columns(3)
    source = c1.selectbox("Vector", VECTOR_SOURCES, key="steer_source")
    layer = c2.selectbox(
        "Layer (added to its resid_pre)",
        list(range(m.n_layers)),
        index=m.n_layers // 3,
        key="steer_layer",
    )
    coef = c3.slider("Coefficient", -20.0, 20.0, 4.0, 0.5, key="steer_coef")
    if source == VECTOR_SOURCES[0]:
        a, b = st.columns(2)
        spec = {
            "plus": a.text_input("Towards (prompt)", " weddings", key="steer_plus"),
            "minus": b.text_input("Away from (prompt)", " ", key="steer_minus"),
        }
    elif source == VECTOR_SOURCES[1]:
        spec = {
            "path": st.text_input(
                "CAA vector file (.npy, [d_model]; the steering run saves one as "
                "arrays/caa_vector.npy)",
                "",
                key="steer_path",
            )
        }
    else:
        a, b = st.columns([3, 1])
        spec = {
            "path": a.text_input(
                "SAE directory (SAELens format; its hook decides the layer)", "", key="steer_sae"
            ),
            "latent": b.number_input("Latent", min_value=0, value=0, key="steer_latent"),
        }
    length = st.number_input("New tokens", min_value=1, max_value=64, value=16, key="steer_len")
    if not st.button("Generate steered and unsteered", key="steer_go"):
        st.caption(
            "Greedy generation with the model's key/value cache, once unsteered and once steered."
        )
        return
    try:
        out = steer_prompt(name, prompt, source, int(layer), float(coef), spec, int(length))
    except Exception as e:
        st.warning(f"Could not steer: {plain(e)}")
        return
    left, right = st.columns(2)
    left.markdown("**Unsteered**")
    left.code(out["unsteered"], language=None)
    right.markdown(f"**Steered** (x{coef:g})")
    right.code(out["steered"], language=None)
    st.plotly_chart(
        steering_plots.token_shift_figure(out["tokens"], out["p_steered"], out["p_unsteered"]),
        key="steer_shift",
    )


# ------------------------------------------------------------------ reversal fact models
@st.cache_data(show_spinner="Searching completions…", max_entries=32)
def fact_completions(name: str, facts: dict, question: str, length: int, k: int = 5) -> list[dict]:
    """The ``k`` likeliest ``length``-token completions of ``question`` (beam search; a masked
    model fills a slot of masks left to right). Raises ValueError on words outside the facts'
    vocabulary or a question too long for the model."""
    from interp.analyses.reversal import top_completions

    m = get_model(name)
    seq_len = make_facts(FactsConfig(**facts)).seq_len
    vocab = m.tokenizer.get_vocab()
    words = question.split()
    unknown = [w for w in words if w not in vocab]
    if unknown:
        raise ValueError(f"unknown words (not in the facts' vocabulary): {', '.join(unknown)}")
    if not words:
        raise ValueError("type a question first")
    ids = [m.tokenizer.bos_token_id] + [vocab[w] for w in words]
    room = min(m.cfg.n_ctx, seq_len)
    if len(ids) + length > room:
        raise ValueError(f"question too long: question and completion must fit {room} tokens")
    return [
        {"rank": rank + 1, "completion": m.tokenizer.decode(toks), "log-prob": round(lp, 3)}
        for rank, (toks, lp) in enumerate(top_completions(m, ids, length, k=k, pad_to=seq_len))
    ]


@st.fragment
def fact_panel(name: str, facts: dict) -> None:
    """ "Ask the fact model": example questions (trained direction and reversed), a question box
    and a button that runs the beam search."""
    from interp.models.recipes.reversal import example_questions

    st.subheader("Ask the fact model")
    fs = make_facts(FactsConfig(**facts))
    examples = example_questions(fs.config)
    st.markdown(
        "This model was trained on generated (fictitious) facts in one direction only for some "
        "entities (the reversal-curse analysis). Try a fact in its trained direction and "
        "reversed:\n\n" + "\n".join(f"- `{q}` ({what})" for q, what in examples)
    )
    question = st.text_input(
        "Question (only words of the facts' vocabulary are known)",
        examples[0][0],
        key=f"fact-q-{name}",
    )
    n_name, n_desc = len(fs.pairs[0].name), len(fs.pairs[0].desc)
    length = st.number_input(
        f"Completion length in tokens (names: {n_name}, descriptions: {n_desc})",
        min_value=1,
        max_value=8,
        value=n_name,
        key=f"fact-len-{name}",
    )
    if not st.button("Find the 5 likeliest completions", key="fact_go"):
        st.caption("Runs a beam search of width 5 on this model.")
        return
    try:
        rows = fact_completions(name, facts, question, int(length))
    except Exception as e:
        st.warning(plain(e))
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True)
