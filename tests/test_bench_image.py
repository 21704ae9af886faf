"""Smoke test of ``python -m bench.image --quick`` (its ``main``): it writes the documented JSON.

Timings are never asserted (they depend on the machine and its load); the
three implementations must agree in value and gradient.
"""

from __future__ import annotations

import json
import math

import pytest

from bench import image as image_bench

IMPLS = ("jaxloss", "dm_pix", "kornia")
MODES = ("forward", "value_and_grad")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    # In process (python -m bench.image calls the same main): the subprocess would pay for
    # importing jax, torch and kornia a second time.
    out = tmp_path_factory.mktemp("bench_image")
    returned = image_bench.main(["--quick", "--out", str(out)])
    report = json.loads((out / "image-cpu-quick.json").read_text())
    assert report == json.loads(json.dumps(returned))
    table = (out / "image-cpu-quick.md").read_text()
    return report, table


def test_schema_and_records(quick_report: tuple[dict, str]) -> None:
    report, table = quick_report
    assert report["schema_version"] == 1
    assert report["quick"] is True
    for key in ("created", "total_seconds", "environment", "settings", "targets_met", "ssim"):
        assert key in report, key
    assert report["environment"]["jax_backend"] == "cpu"
    assert all(isinstance(v, bool) for v in report["targets_met"].values())
    record = report["ssim"]
    assert record["shape"] == report["settings"]["shape"] == [2, 32, 32, 3]
    for impl in IMPLS:
        for mode in MODES:
            timing = record["timings_ms"][impl][mode]
            assert set(timing) == {"median", "min", "repeats"}
            assert math.isfinite(timing["median"]) and 0 < timing["min"] <= timing["median"]
    for impl in ("jaxloss", "dm_pix"):
        for mode in MODES:
            assert isinstance(record["temp_bytes"][impl][mode], int)
    for key in ("jaxloss_over_kornia", "jaxloss_over_dm_pix"):
        for mode in MODES:
            assert record["ratios"][key][mode]["min"] > 0
    assert record["agreement"]["agree"] is True, record["agreement"]
    design = record["filter_design"]
    assert design["alternative_value_rel_diff"] < 1e-4
    assert "| jaxloss |" in table and "jaxloss_over_kornia" in table and "Targets:" in table
