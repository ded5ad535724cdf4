"""Dashboard panel of the ``sae_circuits`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def _per_mode(v) -> dict:
    """Newer runs keep one value per feature mode; older runs a single number."""
    return v if isinstance(v, dict) else {"mean": v}


def _auc_table(st, per: dict, label) -> None:
    st.dataframe(
        [
            {"model / task": key, **{label(k): v for k, v in aucs.items()}}
            for key, aucs in per.items()
        ],
        hide_index=True,
    )


def dashboard(result, st) -> None:
    """ROC AUC of every head scorer per model and task (and of the edge scores against the edge
    circuit, where the run has one), and the SAEs' quality."""
    from interp.methods.sae_scores import family
    from interp.plotting.sae_circuits import method_label

    m = result.metrics
    labels = m.get("labels") or family.labels()  # runs before 2026-12-07 saved no labels
    per = m.get("auc_by_model_task") or {}
    if per:
        st.subheader("ROC AUC against the ground-truth heads, per model and task")
        st.caption("Mean over seeds and ground-truth thresholds; 0.5 is chance.")
        _auc_table(st, per, lambda k: method_label(k, labels))
    edges = m.get("edge_auc_by_model_task") or {}
    if edges:
        st.subheader("Edge-level ROC AUC against the head -> head edge circuit (EAP-IG estimate)")
        _auc_table(st, edges, lambda k: method_label(k, labels))
    if "sae_fvu_mean" in m:
        st.subheader("SAE quality, per feature mode")
        per_mode = _per_mode
        held = per_mode(m.get("sae_fvu_heldout_mean", {}))
        st.dataframe(
            [
                {
                    "features": mode,
                    "FVU (train)": fvu,
                    "FVU (held-out prompts)": held.get(mode, float("nan")),
                    "L0": per_mode(m.get("sae_l0_mean", {})).get(mode, float("nan")),
                    "dead latents": per_mode(m.get("sae_dead_frac_mean", {})).get(
                        mode, float("nan")
                    ),
                }
                for mode, fvu in per_mode(m["sae_fvu_mean"]).items()
            ],
            hide_index=True,
        )
    if m.get("planted_auc"):
        st.caption(
            "Planted positive control (AUC of the planted heads): "
            + "; ".join(f"{k} {v:.2f}" for k, v in m["planted_auc"].items())
        )
    checks = m.get("attribution_check") or []
    if checks:
        st.caption(
            "Attribution vs activation patching: "
            + "; ".join(
                f"r = {c['r_small_alpha']:.3f}" + (f" ({c['model']})" if "model" in c else "")
                for c in checks
            )
        )
