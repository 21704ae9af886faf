"""Smoke test of ``python -m bench.multitask --quick``: it runs and writes the documented JSON.

Timings are never asserted (they depend on the machine and its load).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = ("sum", "jacobian", "jacobian_mean", "pcgrad", "mgda", "upgrad")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench_multitask")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.multitask", "--quick", "--tasks", "2,3", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "multitask-cpu-quick.json").read_text())
    table = (out / "multitask-cpu-quick.md").read_text()
    return report, table


def test_top_level_schema(quick_report: tuple[dict, str]) -> None:
    report, _ = quick_report
    assert report["schema_version"] == 1
    assert report["quick"] is True
    for key in ("created", "total_seconds", "environment", "settings", "methods", "targets",
                "todo", "results"):
        assert key in report, key
    assert set(ALWAYS) <= set(report["methods"])
    weighting_methods = {"famo", "uncertainty"} & set(report["methods"])
    # either both weighting strategies are benchmarked or the TODO says why not
    assert weighting_methods == {"famo", "uncertainty"} or report["todo"]
    assert report["environment"]["jax_backend"] == "cpu"
    assert [r["tasks"] for r in report["results"]] == [2, 3]


def test_result_entries(quick_report: tuple[dict, str]) -> None:
    report, table = quick_report
    for result in report["results"]:
        assert result["params"] > 0
        assert set(result["timings_ms"]) == set(report["methods"])
        for timing in result["timings_ms"].values():
            assert timing["median"] > 0 and math.isfinite(timing["median"])
            assert timing["min"] <= timing["median"] and timing["repeats"] >= 1
        assert result["ratios_to_sum"]["sum"] == pytest.approx(1.0)
        assert set(result["aggregation_over_jacobian"]) == {"pcgrad", "mgda", "upgrad"}
        assert all(isinstance(v, bool) for v in result["meets_target"].values())
        assert f"| {result['tasks']} |" in table
