"""Dashboard panel of the ``circuits`` analysis: reads a saved result, never a model."""

from __future__ import annotations


def dashboard(result, st) -> None:
    """The graph's size, the clean and corrupt metric, the circuits' areas, the strongest edges."""
    m = result.metrics
    if "n_edges" in m:
        st.subheader(f"{m.get('task', '')} on {m.get('model', '')}")
        st.dataframe(
            [
                {
                    "edges": m["n_edges"],
                    "writers": m["n_writers"],
                    "readers": m["n_readers"],
                    "metric, clean": m["clean_metric"],
                    "metric, corrupt": m["corrupt_metric"],
                }
            ],
            hide_index=True,
        )
    if m.get("cpr"):
        st.subheader("Faithfulness areas (MIB)")
        st.caption(
            "CPR: area under faithfulness over the share of edges kept (higher is better); "
            "CMD: area under |1 - faithfulness| (lower is better); share for 80%: the smallest "
            "share sampled that reaches it."
        )
        share = m.get("share_for_80") or {}
        st.dataframe(
            [
                {"scores": k, "CPR": v, "CMD": m["cmd"].get(k), "share for 80%": share.get(k)}
                for k, v in m["cpr"].items()
            ],
            hide_index=True,
        )
    timing = m.get("timing") or {}
    if timing:
        st.caption(
            f"EAP took {timing.get('eap_s', float('nan')):.1f} s "
            f"({timing.get('eap_ratio', float('nan')):.1f} "
            f"forward+backward passes), EAP-IG {timing.get('eap_ig_s', float('nan')):.1f} s "
            f"({timing.get('eap_ig_ratio', float('nan')):.1f})."
        )
    top = m.get("top_edges_eap_ig") or []
    if top:
        st.subheader("Strongest edges (EAP-IG)")
        st.dataframe(top, hide_index=True)
    known = m.get("known_heads") or {}
    if known:
        st.caption(
            "Heads the head scorers single out: "
            + "; ".join(
                f"{k.replace('_', ' ')}: {', '.join(v) or 'none'}" for k, v in known.items()
            )
            + f". {m.get('kept_head_share', 0):.0%} of all heads have an edge in the 80% circuit."
        )
