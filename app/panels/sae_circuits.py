"""Dashboard panel of the ``sae_circuits`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """ROC AUC of every head scorer per model and task, and the SAEs' quality."""
    from interp.plotting.sae_circuits import LABELS

    m = result.metrics
    per = m.get("auc_by_model_task") or {}
    if per:
        st.subheader("ROC AUC against the ground-truth heads, per model and task")
        st.caption("Mean over seeds and ground-truth thresholds; 0.5 is chance.")
        st.dataframe(
            [
                {"model / task": key, **{LABELS.get(k, k): v for k, v in aucs.items()}}
                for key, aucs in per.items()
            ],
            hide_index=True,
        )
    if "sae_fvu_mean" in m:
        st.subheader("SAE quality, per feature mode")
        # newer runs keep one value per feature mode; older runs a single number
        per_mode = lambda v: v if isinstance(v, dict) else {"mean": v}
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
