"""The run comparison page: two or more runs of one experiment, side by side.

Shows criteria values and verdicts per run, config differences, and each figure the
runs share in columns. Reads run directories only (benchmark runs compare like any other).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from common import NO_RUNS, guard, load_result, num, plain

from interp.runs import list_runs
from interp.utils import runs_dir


def compare_page() -> None:
    st.title("Compare runs")
    with guard("The list of runs could not be read"):
        runs = list_runs(root=runs_dir())
        experiments = sorted({r.experiment for r in runs})
        if not experiments:
            st.info(NO_RUNS)
            return
        exp = st.selectbox("Experiment", experiments)
        mine = [r for r in runs if r.experiment == exp]
        ids = [r.id for r in mine]
        chosen = st.multiselect("Runs (two or more)", ids, default=ids[:2])
        if len(chosen) < 2:
            st.info(
                f"Pick at least two runs of `{exp}`"
                + (
                    ""
                    if len(ids) > 1
                    else " (there is only one so far: run "
                    f"`interp run {exp} --preset quick --set seed=1`)"
                )
                + "."
            )
            return
        by_id = {r.id: r for r in mine}
        results = {}
        for rid in chosen:
            try:
                results[rid] = load_result(by_id[rid].path)
            except Exception as e:
                st.error(f"Run {rid} could not be read: {plain(e)}")
        if len(results) < 2:
            return
        st.subheader("Criteria")
        names = list(dict.fromkeys(c.name for r in results.values() for c in r.criteria))
        rows = []
        for name in names:
            row = {"criterion": name}
            for rid, res in results.items():
                c = next((c for c in res.criteria if c.name == name), None)
                row[rid.split("/")[-1]] = "—" if c is None else f"{num(c.value)} ({c.verdict()})"
            rows.append(row)
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        st.subheader("Config differences")
        keys = sorted({k for r in results.values() for k in r.config})
        diff = [
            {"key": k, **{rid.split("/")[-1]: str(r.config.get(k)) for rid, r in results.items()}}
            for k in keys
            if len({str(r.config.get(k)) for r in results.values()}) > 1
        ]
        if diff:
            st.dataframe(pd.DataFrame(diff), hide_index=True)
        else:
            st.caption("The runs have identical configs.")
        shared = [
            f
            for f in next(iter(results.values())).figures
            if all(f in r.figures for r in results.values())
        ]
        if shared:
            st.subheader("Figures")
            fig_name = st.selectbox("Figure", shared)
            cols = st.columns(len(results))
            for col, (rid, res) in zip(cols, results.items(), strict=True):
                with col:
                    st.caption(rid)
                    with guard(f"Figure {fig_name!r} of {rid} could not be drawn"):
                        st.plotly_chart(res.figure(fig_name), key=f"cmp-{rid}-{fig_name}")
