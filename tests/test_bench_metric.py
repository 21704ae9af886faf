"""Smoke test of ``python -m bench.metric --quick``: it runs and writes the documented JSON.

Timings are never asserted (they depend on the machine and its load); memory
is checked only where it is structural (the chunked path holds less than the
dense one, and optax's value_and_grad more).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ("dense", "chunked", "optax")
MODES = ("forward", "value_and_grad")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench_metric")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.metric", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "metric-cpu-quick.json").read_text())
    table = (out / "metric-cpu-quick.md").read_text()
    return report, table


def test_top_level_schema(quick_report: tuple[dict, str]) -> None:
    report, _ = quick_report
    assert report["schema_version"] == 1
    assert report["quick"] is True
    for key in ("created", "total_seconds", "environment", "settings", "targets",
                "targets_met", "block_size", "ntxent", "arcface"):
        assert key in report, key
    assert report["environment"]["jax_backend"] == "cpu"
    assert all(isinstance(v, bool) for v in report["targets_met"].values())
    block = report["block_size"]
    assert block["chosen"] in [c["block_size"] for c in block["candidates"]]
    assert [r["n"] for r in report["ntxent"]] == report["settings"]["ntxent_sizes"]


def _check_timing(timing: dict) -> None:
    assert set(timing) == {"median", "min", "repeats"}
    assert math.isfinite(timing["median"]) and timing["median"] > 0
    assert timing["min"] <= timing["median"] and timing["repeats"] >= 1


def test_ntxent_records(quick_report: tuple[dict, str]) -> None:
    report, table = quick_report
    for record in report["ntxent"]:
        assert record["block_size"] == report["block_size"]["chosen"]
        for impl in IMPLS:
            for mode in MODES:
                temp = record["temp_bytes"][impl][mode]
                assert isinstance(temp, int) and temp >= 0
                assert record["compile_s"][impl][mode] > 0
                # the quick sizes are small enough to run everything
                _check_timing(record["timings_ms"][impl][mode])
        assert record["not_run"] == {}
        temp = record["temp_bytes"]
        assert temp["chunked"]["value_and_grad"] < temp["dense"]["value_and_grad"]
        assert temp["optax"]["value_and_grad"] > temp["dense"]["value_and_grad"]
        # the three implementations compute the same loss and gradient
        agreement = record["agreement"]
        assert agreement["reference"] == "dense"
        for impl in ("chunked", "optax"):
            assert agreement[impl]["value_rel_diff"] < 1e-4, (record["n"], impl, agreement)
            assert agreement[impl]["grad_rel_diff"] < 1e-4, (record["n"], impl, agreement)
        assert record["chunked_over_dense_value_and_grad"] > 0
        assert set(record["meets"]) == {"chunked_temp_le_200mib", "chunked_time_le_1.5x_dense"}
        assert f"| {record['n']} | chunked |" in table


def test_arcface_record(quick_report: tuple[dict, str]) -> None:
    report, table = quick_report
    arcface = report["arcface"]
    assert arcface["value_and_grad_wrt"] == ["embeddings", "kernel"]
    rows = arcface["rows"]
    assert rows[0]["impl"] == "dense" and rows[0]["block_size"] is None
    assert all(r["impl"] == "chunked" and r["block_size"] > 0 for r in rows[1:])
    for row in rows:
        for mode in MODES:
            assert isinstance(row["temp_bytes"][mode], int)
        assert isinstance(row["meets_temp_le_200mib"], bool)
    dense = rows[0]["temp_bytes"]["value_and_grad"]
    assert all(r["temp_bytes"]["value_and_grad"] < dense for r in rows[1:])
    assert "ArcFace" in table and "Targets:" in table
