"""Smoke tests of every bench suite (``python -m bench --suite NAME --quick``) and their files.

One test per suite runs it once, in this process (importing jax, torch and
kornia once for all suites), at its quick sizes, and checks the JSON and the
markdown it writes. Timings are never asserted (they depend on the machine and
its load); the implementations must agree in value and gradient, and memory is
checked only where it is structural (the chunked path holds less than the
dense one, and optax's value_and_grad more).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import pytest

from bench import __main__ as bench_main

ROOT = Path(__file__).resolve().parents[1]
MODES = ("forward", "value_and_grad")
# losses suite
IMPLEMENTATIONS = ("floor", "jaxloss", "optax", "torch")
NO_OPTAX = ("focal", "giou", "ciou")  # optax has no softmax focal loss and no box losses
# image suite
IMAGE_IMPLS = ("jaxloss", "dm_pix", "kornia")
# metric suite
METRIC_IMPLS = ("dense", "chunked", "optax")
# multitask suite
AGGREGATORS = ("pcgrad", "mgda", "upgrad", "gradvac", "config", "dualproj", "fairgrad")
ALWAYS = ("sum", "jacobian", "jacobian_mean", *AGGREGATORS)

# suite -> (extra quick flags, result file stem)
SUITES: dict[str, tuple[tuple[str, ...], str]] = {
    "losses": (("--repeats", "2", "--warmup", "1"), "results-cpu-quick"),
    "image": ((), "image-cpu-quick"),
    "metric": ((), "metric-cpu-quick"),
    "multitask": (("--tasks", "2,3"), "multitask-cpu-quick"),
    "gpu": ((), "gpu-quick"),
    "dense": ((), "dense-cpu-quick"),
    "detr": ((), "detr-cpu-quick"),
    # one case of each kind (layout change, two gradients, MONAI, no torch autograd, PML
    # with its chunked jaxloss twin): the whole quick suite compiles ~30 functions
    "families": (("--case", "heatmap_mse,simcc,bending_energy,bi_tempered,normalized_softmax"),
                 "families-cpu-quick-partial"),
}


def _run(suite: str, out: Path, *flags: str) -> object:
    # In process: a subprocess per suite would pay for importing jax, torch and kornia
    # again. The suites compare against optax and dm-pix, whose code mixes dtypes and
    # ranks, so the test suite's strict promotion is lifted for the bench code.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return bench_main.run_suite(suite, [*flags, "--out", str(out)])


def _check_timing(timing: dict) -> None:
    assert set(timing) == {"median", "min", "repeats"}
    assert math.isfinite(timing["median"]) and timing["median"] > 0
    assert timing["min"] <= timing["median"] and timing["repeats"] >= 1


def _check_modes(entry: dict) -> None:
    for mode in MODES:
        _check_timing(entry[mode])


# ----------------------------------------------------------------------------- losses


def _losses_top_level_schema(result: dict, table: str) -> None:
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
    assert names == {"mse", "huber", "bce", "sigmoid_focal", "cross_entropy", "focal",
                     "giou", "ciou"}


def _losses_every_case_measured_and_agreeing(result: dict, table: str) -> None:
    for rec in result["results"]:
        where = f"{rec['case']} {rec['size']}"
        assert rec["status"] == "ok", (where, rec["status"], rec.get("agreement"))
        assert rec["elements"] == math.prod(rec["shape"])
        assert rec["agreement"]["agree"], (where, rec["agreement"])
        timings = rec["timings_ms"]
        assert set(timings) == set(IMPLEMENTATIONS)
        for impl in ("floor", "jaxloss", "torch"):
            _check_modes(timings[impl])
        if rec["case"] in NO_OPTAX:
            assert timings["optax"] is None and rec["temp_bytes"]["optax"] is None
            assert rec["notes"]["optax"].startswith("n/a")
        else:
            _check_modes(timings["optax"])
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


def _losses_markdown_table(result: dict, table: str) -> None:
    assert "| case | size | impl | forward ms |" in table
    for title in ("MSE", "Huber", "Binary cross-entropy", "Cross-entropy", "Focal", "GIoU",
                  "CIoU"):
        assert title in table
    assert "optax has only sigmoid_focal_loss" in table
    assert "optax has no box losses" in table


# ----------------------------------------------------------------------------- image


def _image_schema_and_records(report: dict, table: str) -> None:
    assert report["schema_version"] == 1
    assert report["quick"] is True
    for key in ("created", "total_seconds", "environment", "settings", "targets_met", "ssim"):
        assert key in report, key
    assert report["environment"]["jax_backend"] == "cpu"
    assert all(isinstance(v, bool) for v in report["targets_met"].values())
    record = report["ssim"]
    assert record["shape"] == report["settings"]["shape"] == [2, 32, 32, 3]
    for impl in IMAGE_IMPLS:
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


# ----------------------------------------------------------------------------- metric


def _metric_top_level_schema(report: dict, table: str) -> None:
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


def _metric_ntxent_records(report: dict, table: str) -> None:
    for record in report["ntxent"]:
        assert record["block_size"] == report["block_size"]["chosen"]
        for impl in METRIC_IMPLS:
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


def _metric_arcface_record(report: dict, table: str) -> None:
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


# ----------------------------------------------------------------------------- multitask


def _multitask_top_level_schema(report: dict, table: str) -> None:
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


def _multitask_result_entries(report: dict, table: str) -> None:
    for result in report["results"]:
        assert result["params"] > 0
        assert set(result["timings_ms"]) == set(report["methods"])
        for timing in result["timings_ms"].values():
            assert timing["median"] > 0 and math.isfinite(timing["median"])
            assert timing["min"] <= timing["median"] and timing["repeats"] >= 1
        assert result["ratios_to_sum"]["sum"] == pytest.approx(1.0)
        assert set(result["aggregation_over_jacobian"]) == set(AGGREGATORS)
        assert all(isinstance(v, bool) for v in result["meets_target"].values())
        assert f"| {result['tasks']} |" in table


# ----------------------------------------------------------------------------- gpu


def _gpu_sections(report: dict, table: str) -> None:
    assert report["suite"] == "gpu" and report["quick"] is True and report["complete"] is True
    env = report["environment"]
    for key in ("jax", "jaxlib", "optax", "torch", "jax_backend", "jax_device_kind"):
        assert key in env
    assert "memory" in report["device"] and "jax_devices" in report["device"]
    s = report["sections"]
    assert set(s) == {"bandwidth", "elementwise", "pairs", "arcface", "dense", "scale"}
    bw = s["bandwidth"]
    assert bw["values_checked"] is True and bw["bandwidth_gb_per_s"] > 0
    assert set(bw["gb_per_s"]) == {"jax x+1", "torch clone"}
    assert [r["case"] for r in s["elementwise"]] == ["mse", "huber", "bce", "cross_entropy",
                                                     "focal"]
    for rec in s["elementwise"] + s["dense"]:
        assert rec["status"] == "ok", (rec["case"], rec["status"], rec.get("agreement"))
        assert rec["agreement"]["agree"] is True, (rec["case"], rec["agreement"])
        for timings in rec["timings_ms"].values():
            for timing in timings.values():
                _check_timing(timing)
    for rec in s["elementwise"]:
        expected = {"jaxloss", "torch"} | ({"optax"} if rec["case"] != "focal" else set())
        assert set(rec["timings_ms"]) == expected
        assert rec["compile"]["jaxloss"]["value_and_grad"]["compile_s"] > 0
        assert isinstance(rec["temp_bytes"]["jaxloss"]["forward"], int)
        for impl in expected:
            for mode in MODES:
                assert rec["percent_of_bandwidth"][impl][mode] > 0
    assert [r["case"] for r in s["dense"]] == ["ssim", "lovasz", "dice_ce", "edt_2d", "edt_3d"]
    for rec in s["dense"][:3]:
        assert set(rec["timings_ms"]) == {"jaxloss", "torch"}
    for rec in s["dense"][3:]:
        assert set(rec["timings_ms"]) == {"jaxloss", "scipy (host)"}
        assert rec["agreement"]["max_abs_diff"] < 1e-3
    assert [(r["loss"], r["n"]) for r in s["pairs"]] == [("ntxent", 64), ("siglip", 64)]
    for rec in s["pairs"]:
        assert rec["status"] == "ok", (rec["loss"], rec["status"], rec.get("agreement"))
        expected = {"chunked", "dense"} | ({"optax"} if rec["loss"] == "ntxent" else set())
        assert set(rec["impls"]) == expected and rec["not_run"] == {}
        for entry in rec["impls"].values():
            _check_timing(entry["value_and_grad_ms"])
            assert isinstance(entry["temp_bytes"], int) and entry["compile_s"] > 0
        agreement = rec["agreement"]
        for impl in expected:  # float32 on the CPU: the same loss to rounding
            assert agreement[impl]["value_rel_diff"] < 1e-4, (rec["loss"], impl, agreement)
        for impl in expected - {"chunked"}:
            assert agreement[impl]["grad_rel_diff_chunked_vs"] < 1e-4, (impl, agreement)
    arcface = s["arcface"]
    assert arcface["status"] == "ok" and set(arcface["impls"]) == {"chunked", "dense"}
    assert arcface["agreement"]["value_rel_diff"] < 1e-4
    assert arcface["agreement"]["grad_rel_diff"] < 1e-4
    assert [(r["loss"], r["n"]) for r in s["scale"]] == [("ntxent", 128), ("siglip", 128)]
    for rec in s["scale"]:
        assert rec["status"] == "ok" and rec["step_s"] > 0, rec
        assert rec["agreement"]["agree"] is True, rec["agreement"]
    for heading in ("## Copy bandwidth", "## Elementwise", "## NT-Xent", "## ArcFace",
                    "## Image and segmentation", "## Largest global batch"):
        assert heading in table


# ----------------------------------------------------------------------------- dense


def _dense_cases_measured_and_agreeing(report: dict, table: str) -> None:
    assert [r["case"] for r in report["results"]] == ["varifocal", "distribution_focal",
                                                      "yolo_criterion"]
    for record in report["results"]:
        assert set(record["timings_ms"]) == {"jaxloss", "torch"}
        for timing in record["timings_ms"].values():
            _check_timing(timing)
        assert isinstance(record["temp_bytes"], int) and record["compile_s"] > 0
        # the torch formulas and jaxloss compute the same loss and gradient
        assert record["agreement"]["value_rel"] < 1e-5, record
        assert record["agreement"]["grad_rel"] < 1e-4, record
        assert f"| {record['case']} |" in table
    assert set(report["targets_met"]) == {
        "varifocal value_and_grad no slower than torch",
        "distribution_focal value_and_grad no slower than torch"}


# ----------------------------------------------------------------------------- detr


def _detr_report(report: dict, table: str) -> None:
    assert report["environment"]["scipy"]
    assert report["settings"]["images"] == 4 and report["settings"]["queries"] == 30
    timed = {"scipy per image", "jaxloss (jit, batch)", "scipy loop (batch)",
             "hungarian_match (jit)", "cost on device + scipy loop",
             "detr_criterion value_and_grad (jit)"}
    assert set(report["timings_ms"]) == timed
    for timing in report["timings_ms"].values():
        _check_timing(timing)
    assert set(report["compile_s"]) == timed - {"scipy per image", "scipy loop (batch)"}
    assert all(v > 0 for v in report["compile_s"].values())
    assert report["agreement"]["agree"] is True, report["agreement"]
    assert isinstance(report["meets_target"], bool) and report["jaxloss_over_scipy_loop"] > 0
    assert "| jaxloss (jit, batch) |" in table and "Target:" in table


# ----------------------------------------------------------------------------- families


def _families_report(report: dict, table: str) -> None:
    from bench import families

    cases = ["heatmap_mse", "simcc", "bending_energy", "bi_tempered", "normalized_softmax"]
    assert [r["case"] for r in report["results"]] == cases
    assert set(cases) <= set(families.CASES)
    assert report["settings"]["compile_limit_s"] == 1.0
    for key in ("torch", "monai", "pytorch_metric_learning"):
        assert report["environment"][key], key
    for record in report["results"]:
        chunked = record["case"] == "normalized_softmax"
        impls = ["jaxloss"] + (["jaxloss block_size=8"] if chunked else [])
        assert list(record["compile"]) == impls and set(record["agreement"]) == set(impls)
        assert set(record["timings_ms"]) == {*impls, "torch"}
        for timing in record["timings_ms"].values():
            _check_timing(timing)
        for impl in impls:
            info = record["compile"][impl]
            assert info["compile_s"] > 0 and info["compile_cpu_s"] >= 0
            assert isinstance(info["temp_bytes"], int)
            assert record["ratios"][f"{impl}_over_torch"] > 0
            # jaxloss and the reference compute the same loss and gradient
            assert record["agreement"][impl]["value_rel"] < 1e-5, record
            assert record["agreement"][impl]["grad_rel"] < 1e-4, record
        assert record["status"] == "ok"
        assert f"| {record['case']} |" in table
    slow = {(x["case"], x["impl"]) for x in report["slow_compiles"]}
    assert slow == {(r["case"], impl) for r in report["results"]
                    for impl, c in r["compile"].items() if c["compile_s"] > 1.0}
    assert "Compiles over 1 s:" in table and "load average" in table


# ----------------------------------------------------------------------------- the suites


CHECKS: dict[str, tuple[Callable[[dict, str], None], ...]] = {
    "losses": (_losses_top_level_schema, _losses_every_case_measured_and_agreeing,
               _losses_markdown_table),
    "image": (_image_schema_and_records,),
    "metric": (_metric_top_level_schema, _metric_ntxent_records, _metric_arcface_record),
    "multitask": (_multitask_top_level_schema, _multitask_result_entries),
    "gpu": (_gpu_sections,),
    "dense": (_dense_cases_measured_and_agreeing,),
    "detr": (_detr_report,),
    "families": (_families_report,),
}


@pytest.mark.parametrize("suite", list(SUITES))
def test_suite_quick(suite: str, tmp_path: Path) -> None:
    flags, stem = SUITES[suite]
    returned = _run(suite, tmp_path, "--quick", *flags)
    report = json.loads((tmp_path / f"{stem}.json").read_text())
    table = (tmp_path / f"{stem}.md").read_text()
    assert report["schema_version"] == 1 and report["quick"] is True
    assert report["environment"]["jax_backend"] == "cpu"
    if isinstance(returned, dict):  # what main returns is what it wrote
        assert report == json.loads(json.dumps(returned))
    for check in CHECKS[suite]:
        check(report, table)


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


def test_suite_flag() -> None:
    assert bench_main.split_suite(["--quick"]) == ("losses", ["--quick"])
    assert bench_main.split_suite(["--suite", "gpu", "--out", "x"]) == ("gpu", ["--out", "x"])
    assert bench_main.split_suite(["--suite=metric", "--quick"]) == ("metric", ["--quick"])
    assert bench_main.main(["--suite", "nope"]) == 2


def test_gpu_suite_refuses_without_gpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Without --quick (or --allow-cpu) the GPU suite does not start on a CPU-only machine.
    assert bench_main.main(["--suite", "gpu", "--out", str(tmp_path)]) == 2
    assert "needs a GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
