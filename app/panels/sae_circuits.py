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
        st.dataframe([{"model / task": key, **{LABELS.get(k, k): v for k, v in aucs.items()}}
                      for key, aucs in per.items()], hide_index=True)
    if "sae_fvu_mean" in m:
        st.subheader("SAE quality")
        cols = st.columns(3)
        cols[0].metric("variance unexplained (mean)", f"{m['sae_fvu_mean']:.3f}")
        cols[1].metric("active features per input (L0)", f"{m.get('sae_l0_mean', float('nan')):.1f}")
        cols[2].metric("dead features", f"{m.get('sae_dead_frac_mean', float('nan')):.1%}")
    checks = m.get("attribution_check") or []
    if checks:
        st.caption("Attribution vs activation patching: " + "; ".join(
            f"r = {c['r_small_alpha']:.3f}" + (f" ({c['model']})" if "model" in c else "") for c in checks))
