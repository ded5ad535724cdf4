"""Dashboard panel of the ``check`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """What was compared, the per-layer errors, the hook kinds found, and collect's speed."""
    m = result.metrics
    if "hidden_max_abs_error" not in m:
        return
    st.subheader("Parity with the model's own forward")
    cols = st.columns(3)
    cols[0].metric("reference", str(m.get("reference", "?")))
    cols[1].metric("dtype", str(m.get("dtype", "?")))
    logits = m.get("logits_max_abs_error")
    cols[2].metric("logits max abs error", "no LM head" if logits is None else f"{logits:.3g}")
    rows = [
        {"hook": name, "max abs error": err, "tolerance": m.get("hidden_tolerance")}
        for name, err in zip(m.get("compared_hooks") or [], m["hidden_max_abs_error"], strict=False)
    ]
    if rows:
        st.dataframe(rows, hide_index=True)
    if m.get("final_hidden_is_normed"):
        st.caption(
            "The model's last hidden state is after its final norm (Hugging Face's convention "
            "for this architecture), so it is compared with the final norm's output."
        )
    st.subheader("Hooks")
    cols = st.columns(3)
    cols[0].metric("hooks", m.get("n_hooks", 0))
    cols[1].metric("outside the blocks", m.get("n_hooks_outside_blocks", 0))
    cols[2].metric("unresolved", len(m.get("unresolved_hooks") or []))
    kinds = m.get("hook_kinds") or {}
    if kinds:
        st.dataframe(
            [
                {"kind": k, "layers": len(ls), "found on": ", ".join(map(str, ls)) or "none"}
                for k, ls in kinds.items()
            ],
            hide_index=True,
        )
    if m.get("missing_kinds"):
        st.warning(
            "This model has no "
            + ", ".join(m["missing_kinds"])
            + " hooks: analyses that read them "
            "will not run on it."
        )
    if m.get("collect_over_bare") is not None:
        st.subheader("collect vs a bare forward")
        cols = st.columns(3)
        cols[0].metric("collect / bare", f"{m['collect_over_bare']:.2f}x")
        cols[1].metric("bare", f"{m.get('bare_ms', 0):.1f} ms")
        cols[2].metric("collect", f"{m.get('collect_ms', 0):.1f} ms")
        st.caption(
            f"collect took the {m.get('collect_path', '?')} path; the bare forward ran "
            f"{m.get('bare_module', '?')}. A timing, not a criterion: it depends on the "
            "machine's load."
        )
        if m.get("plain_routed_hooks") is not None:
            only = m.get("bridge_only_hook_kinds") or []
            st.caption(
                f"{m['plain_routed_hooks']} of {m.get('n_hooks', '?')} hook names are read off "
                "plain modules "
                "(the fast path, each route checked against the bridge's hooks)"
                + (
                    f"; only the bridge's hooks compute {', '.join(only[:12])}"
                    + (f" and {len(only) - 12} more" if len(only) > 12 else "")
                    if only
                    else ""
                )
                + "."
            )
