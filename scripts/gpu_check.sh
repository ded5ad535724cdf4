#!/usr/bin/env bash
# GPU check: on a machine with a CUDA device, run the CUDA tests and the benchmark's GPU items,
# and write both results to one JSON file. Takes a few minutes (well under 8 on one modern GPU).
#
#   scripts/gpu_check.sh [OUT.json]        (default: gpu_check.json; uses .venv if present)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check.json}"
py="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
work="$(mktemp -d)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 INTERP_RUNS="$work/runs"

"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: nothing to check')"
set +e
"$py" -m pytest -q -m cuda -p no:cacheprovider --junitxml="$work/cuda.xml" tests > "$work/pytest.txt" 2>&1
tests_rc=$?
"$py" -m interp.cli bench collection --preset quick > "$work/bench_collection.txt" 2>&1
bench_rc=$?
"$py" -m interp.cli bench knockout --preset quick > "$work/bench_knockout.txt" 2>&1
set -e
"$py" - "$work" "$out" "$tests_rc" "$bench_rc" <<'PY'
import json, sys, platform
import xml.etree.ElementTree as ET
from pathlib import Path
import torch
work, out, tests_rc, bench_rc = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
suite = ET.parse(work / "cuda.xml").getroot().iter("testcase") if (work / "cuda.xml").exists() else []
tests = [{"test": f"{c.get('classname')}::{c.get('name')}", "seconds": float(c.get("time", 0)),
          "outcome": "failed" if c.find("failure") is not None or c.find("error") is not None
          else "skipped" if c.find("skipped") is not None else "passed"} for c in suite]
bench = {}
for run in sorted((work / "runs" / "bench").glob("*/metrics.json")):
    for c in json.loads(run.read_text())["criteria"]:
        bench[c["name"]] = {k: c[k] for k in ("value", "op", "threshold", "holds", "kind", "description")}
report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
          "tests_exit_code": tests_rc, "bench_exit_code": bench_rc, "tests": tests, "bench": bench,
          "pytest_tail": (work / "pytest.txt").read_text()[-2000:]}
Path(out).write_text(json.dumps(report, indent=2))
n_pass = sum(t["outcome"] == "passed" for t in tests)
print(f"{report['device']}: {n_pass}/{len(tests)} CUDA tests passed; {len(bench)} bench criteria -> {out}")
for name in ("cuda_collect_to_host_over_bare", "knockout_sweep_over_clean_forward"):
    if name in bench:
        print(f"  {name}: {bench[name]['value']} ({bench[name]['op']} {bench[name]['threshold']})")
PY
