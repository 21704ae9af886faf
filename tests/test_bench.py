"""Smoke test of the benchmark harness: ``python -m bench --quick`` and its JSON schema.

Timings are never asserted (they depend on the machine and its load); the
test checks that every case runs at its quick size, that the implementations
agree, and that the result file has the documented fields.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("floor", "jaxloss", "optax", "torch")
MODES = ("forward", "value_and_grad")
NO_OPTAX = ("focal", "giou", "ciou")  # optax has no softmax focal loss and no box losses


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--repeats", "2", "--warmup", "1",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "results-cpu-quick.json").read_text())
    table = (out / "results-cpu-quick.md").read_text()
    return result, table


def test_top_level_schema(quick_result: tuple[dict, str]) -> None:
    result, _ = quick_result
    assert result["schema_version"] == 1
    assert result["quick"] is True
    env = result["environment"]
    for key in ("jax", "optax", "torch", "jax_backend", "jax_device_kind", "cpu_count",
                "torch_num_threads", "python"):
        assert key in env
    assert isinstance(env["cpu_count"], int) and env["cpu_count"] >= 1
    for key in ("repeats", "warmup", "floor_forward", "floor_value_and_grad"):
        assert key in result["settings"]
    names = {r["case"] for r in result["results"]}
    assert names == {"mse", "huber", "bce", "cross_entropy", "focal", "giou", "ciou"}


def _check_timing(entry: dict) -> None:
    for mode in MODES:
        timing = entry[mode]
        assert set(timing) == {"median", "min", "repeats"}
        assert timing["median"] > 0 and timing["min"] <= timing["median"]
        assert timing["repeats"] >= 1


def test_every_case_measured_and_agreeing(quick_result: tuple[dict, str]) -> None:
    result, _ = quick_result
    for rec in result["results"]:
        where = f"{rec['case']} {rec['size']}"
        assert rec["status"] == "ok", (where, rec["status"], rec.get("agreement"))
        assert rec["elements"] == math.prod(rec["shape"])
        assert rec["agreement"]["agree"], (where, rec["agreement"])
        timings = rec["timings_ms"]
        assert set(timings) == set(IMPLEMENTATIONS)
        for impl in ("floor", "jaxloss", "torch"):
            _check_timing(timings[impl])
        if rec["case"] in NO_OPTAX:
            assert timings["optax"] is None and rec["temp_bytes"]["optax"] is None
            assert rec["notes"]["optax"].startswith("n/a")
        else:
            _check_timing(timings["optax"])
            assert set(rec["same_program_as_optax"]) == set(MODES)
        for impl in ("floor", "jaxloss"):
            for mode in MODES:
                value = rec["temp_bytes"][impl][mode]
                assert value is None or (isinstance(value, int) and value >= 0)
        for mode in MODES:
            ratios = rec["ratios"][mode]
            assert ratios["jaxloss_over_floor"] > 0
            if rec["case"] in NO_OPTAX:
                assert ratios["jaxloss_over_optax"] is None
        assert rec["compile"]["jaxloss"]["value_and_grad"]["compile_s"] > 0
        if rec["elementwise"]:
            acceptance = rec["acceptance"]
            assert set(acceptance) >= {"forward_over_optax", "value_and_grad_over_optax",
                                       "forward_temp_bytes", "same_program_as_optax",
                                       "meets"}
            assert isinstance(acceptance["meets"], bool)


def test_markdown_table(quick_result: tuple[dict, str]) -> None:
    _, table = quick_result
    assert "| case | size | impl | forward ms |" in table
    for title in ("MSE", "Huber", "Binary cross-entropy", "Cross-entropy", "Focal", "GIoU",
                  "CIoU"):
        assert title in table
    assert "optax has only sigmoid_focal_loss" in table
    assert "optax has no box losses" in table


def test_filters_and_script_entry_point(tmp_path: Path) -> None:
    # `python bench/run.py` works without installing the package; a filtered run is named
    # -partial so that it never overwrites a full result.
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--case", "mse", "--repeats", "1",
         "--warmup", "1", "--no-torch", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "results-cpu-quick-partial.json").read_text())
    assert [r["case"] for r in result["results"]] == ["mse"]
    assert result["results"][0]["timings_ms"]["torch"] is None


def test_selection_errors() -> None:
    from bench import cases

    assert [c.name for c in cases.select(family="regression")] == ["mse", "huber"]
    assert [c.name for c in cases.select(case="focal,bce")] == ["bce", "focal"]
    assert [c.name for c in cases.select(family="detection")] == ["giou", "ciou"]
    with pytest.raises(ValueError, match="unknown --case"):
        cases.select(case="nope")
    with pytest.raises(ValueError, match="unknown --family"):
        cases.select(family="nope")
