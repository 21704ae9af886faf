"""Tests of the example scripts (examples/*.py).

One parametrised smoke test runs every example end to end with its ``--smoke``
configuration (a few training steps on a little data, a narrow network where
that matters) in this process, then checks what it printed, returned and
saved: every PNG, every row of its table, and, where the smoke run is long
enough to show it, that training beats the example's baseline (the denoisers
beat the noisy input, the VAE's negative ELBO falls). The examples run under
standard dtype promotion, as a user runs them: optax's Adam mixes its int32
step count with float32, which the suite's strict promotion forbids. The other
tests check each example's data and its NumPy metrics without training.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@functools.cache
def _load(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (loaded once: its jitted functions compile once)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))  # the scripts import examples/_common.py as _common
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split_data(example: ModuleType, train_images: int, test_images: int,
                labels: str) -> dict[str, np.ndarray]:
    """``example.make_data`` at seed 3, checked: the same again at seed 3, another ``labels``
    array at seed 4, float32 images ``[N, SIZE, SIZE, 1]`` and a held-out split that is not
    the start of the training one."""
    data = example.make_data(seed=3, train_images=train_images, test_images=test_images)
    again = example.make_data(seed=3, train_images=train_images, test_images=test_images)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
    assert data["x_train"].shape == (train_images, example.SIZE, example.SIZE, 1)
    assert data["x_train"].dtype == np.float32
    assert not np.array_equal(data["x_train"][:test_images], data["x_test"])  # distinct splits
    other = example.make_data(seed=4, train_images=train_images, test_images=test_images)
    assert not np.array_equal(other[labels], data[labels])
    return data


def _row(lines: list[str], label: str) -> list[str]:
    """The cells after ``label`` of the one table row that starts with it."""
    rows = [line for line in lines if line.startswith(label + " ")]
    assert len(rows) == 1, (label, rows)
    return rows[0][len(label):].split()


# ----------------------------------------------------------------------------- smoke runs
# One check per example: what its smoke run must print and return (the PNGs are checked
# for all of them by the test below).


def _check_quickstart(example: ModuleType, result: dict[str, Any], out: str) -> None:
    assert "balanced accuracy" in out
    for name in ("cross-entropy", "weighted CE", "focal"):
        assert name in out
    # one row of recalls per class, three losses each
    rows = [line for line in out.splitlines() if line[:4].strip().isdigit()]
    assert len(rows) == 10
    for row in rows:
        recalls = [float(v) for v in row.split()[-3:]]
        assert all(0.0 <= r <= 1.0 for r in recalls)
    assert all(r.shape == (example.NUM_CLASSES,) for r in result["recalls"].values())


def _check_segmentation(example: ModuleType, result: dict[str, Any], out: str) -> None:
    assert "Per-class IoU on the held-out set" in out
    for run in ("cross-entropy", "Dice+CE", "Lovász"):
        assert run in out
    # one row per class and a mean-IoU row, three runs each, every IoU in [0, 1] (or nan)
    lines = out.splitlines()
    for label in ("background", "rectangle", "disc", "cross", "mean IoU"):
        rows = [line for line in lines if line.startswith(label)]
        assert rows, label
        values = [float(v) for v in rows[0].split()[-3:]]
        assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in values), rows[0]
    assert len(result["ious"]) == 3


def _check_detection(example: ModuleType, result: dict[str, Any], out: str) -> None:
    assert "IoU of the predicted box with the true box, held-out set" in out
    lines = out.splitlines()
    header = [line for line in lines if line.startswith("held-out boxes")]
    assert header and header[0].split()[-3:] == ["L1", "GIoU", "CIoU"], header
    # a mean, a median and two threshold rows, three losses each, every value in [0, 1]
    for label in ("mean IoU", "median IoU", "IoU > 0.5", "IoU > 0.75"):
        rows = [line for line in lines if line.startswith(label)]
        assert rows, label
        values = [float(v) for v in rows[0].split()[-3:]]
        assert all(0.0 <= v <= 1.0 for v in values), rows[0]
    assert tuple(result["ious"]) == ("L1", "GIoU", "CIoU")


def _check_metric_learning(example: ModuleType, result: dict[str, Any], out: str) -> None:
    assert "Recall@1 on held-out images" in out and "What the numbers mean" in out
    lines = out.splitlines()
    smoke = tuple(example.SMOKE["methods"].split(","))
    # one row per model: recall@1 on seen and on unseen classes
    for label in ("raw pixels", "untrained network", *smoke):
        values = [float(v) for v in _row(lines, label)[-2:]]
        assert all(0.0 <= v <= 1.0 for v in values), (label, values)
        assert values == pytest.approx(list(result["recalls"][label]), abs=5e-4)
    # the smoke run (seed 1, 200 steps) already retrieves unseen digits better than raw
    # pixels with each of its losses, the cross-batch memory run included
    pixels = result["recalls"]["raw pixels"][1]
    for label in smoke:
        assert result["recalls"][label][1] > pixels, (label, result["recalls"])
    assert f"{len(smoke)} of {len(smoke)} trained embeddings beat them" in out


def _check_multitask(example: ModuleType, result: dict[str, Any], out: str) -> None:
    strategies = tuple(example.SMOKE["strategies"].split(","))
    assert strategies[0] == "fixed weights"
    assert "Held-out metrics" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("strategy"))
    for column in ("mask mIoU", "box IoU", "class acc", "ms/step"):
        assert column in header
    # one row per strategy: three metrics in [0, 1], then a positive time per step and the
    # ratio to the fixed-weight step (1 for the fixed-weight row itself)
    for strategy in strategies:
        cells = _row(lines, strategy)
        metrics, ms, ratio = [float(v) for v in cells[:3]], float(cells[3]), float(cells[4])
        assert all(0.0 <= v <= 1.0 for v in metrics), cells
        assert ms > 0.0 and ratio > 0.0, cells
        if strategy == "fixed weights":
            assert ratio == 1.0
        if strategy in example.GRADIENT_LEVEL:
            assert "gradient-level" in " ".join(cells)  # no loss weights to report
        else:  # the weightings report their final task weights: three finite numbers >= 0
            weights = [float(v) for v in cells[5:]]
            assert len(weights) == 3 and all(np.isfinite(w) and w >= 0 for w in weights)
    assert tuple(result["metrics"]) == strategies
    # the setting the example is about: the box loss (px^2) dwarfs the class loss
    assert result["box_class_ratio"][0] > 30.0, result["box_class_ratio"]
    # the claim: a strategy blind to the loss scale beats the plain sum on the task
    # the box loss crowds out (class accuracy on held-out images), and the output says so
    fixed = result["metrics"]["fixed weights"]["class acc"]
    better = [n for n in strategies[1:] if result["metrics"][n]["class acc"] > fixed]
    assert better, result["metrics"]
    assert result["class_winners"] == better
    assert "Which wins" in out and "Beat fixed weights on class accuracy: " + better[0] in out


def _check_image_restoration(example: ModuleType, result: dict[str, Any], out: str) -> None:
    rows = ("noisy input", "L2", "L1+SSIM", "Charbonnier")
    metrics = result["metrics"]
    assert tuple(metrics) == rows
    noisy = metrics["noisy input"]
    # sigma 0.1 on [0, 1]: about 20 dB before clipping (clipping to [0, 1] only helps)
    assert 19.0 < noisy["psnr"] < 23.0, noisy
    for name in rows[1:]:
        assert math.isfinite(metrics[name]["psnr"]) and -1.0 <= metrics[name]["ssim"] <= 1.0
        # 100 steps gain 1.8-4 dB for every model and seed 0-5 (here seed 1: ~4 dB)
        assert metrics[name]["psnr"] > noisy["psnr"] + 1.0, (name, metrics)
        assert metrics[name]["ssim"] > noisy["ssim"], (name, metrics)
        curve = result["losses"][name]
        assert curve.shape == (100,) and np.all(np.isfinite(curve))
        assert curve[-10:].mean() < curve[:10].mean(), name
    # the printed table: one row per model with its PSNR and SSIM
    lines = out.splitlines()
    for name in rows:
        psnr, ssim = (float(v) for v in _row(lines, name)[:2])
        assert psnr == pytest.approx(metrics[name]["psnr"], abs=0.01)
        assert ssim == pytest.approx(metrics[name]["ssim"], abs=1e-4)


def _check_vae(example: ModuleType, result: dict[str, Any], out: str) -> None:
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    for h in history:
        for key in ("recon", "kl", "test_recon", "test_kl"):
            assert math.isfinite(h[key]), h
        assert h["kl"] > 0.0 and h["test_kl"] > 0.0, h
        assert h["loss"] == pytest.approx(h["recon"] + h["kl"])
    first, last = history[0], history[-1]
    assert last["loss"] < first["loss"] - 3.0, history  # ~36 -> ~27 nats per image
    assert last["test_loss"] < first["test_loss"], history
    # the Bernoulli cross-entropy against soft targets is at least their entropy
    test_floor = example.target_entropy(example.load_data(1)["x_test"])
    assert all(h["test_recon"] > test_floor for h in history)
    # the printed table: one row per epoch with six numbers
    rows = [line.split() for line in out.splitlines() if line[:5].strip().isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    for row, h in zip(rows, history, strict=True):
        values = [float(v) for v in row[1:]]
        expected = [h["recon"], h["kl"], h["loss"], h["test_recon"], h["test_kl"],
                    h["test_loss"]]
        np.testing.assert_allclose(values, expected, atol=1e-3)


def _check_depth(example: ModuleType, result: dict[str, Any], out: str) -> None:
    metrics = result["metrics"]
    assert tuple(metrics) == ("L1", "SILog", "SSI")
    for name, m in metrics.items():
        assert all(math.isfinite(v) for v in m.values()), (name, m)
        curve = result["losses"][name]
        assert curve.shape == (100,) and np.all(np.isfinite(curve))
    # The scale-invariant losses beat L1 on scale-ambiguous targets: SILog under median
    # scaling, both under scale-and-shift alignment (SSI's own protocol: its shift is free).
    assert metrics["SILog"]["abs_rel"] < metrics["L1"]["abs_rel"], metrics
    assert metrics["SILog"]["abs_rel_lsq"] < metrics["L1"]["abs_rel_lsq"], metrics
    assert metrics["SSI"]["abs_rel_lsq"] < metrics["L1"]["abs_rel_lsq"], metrics
    lines = out.splitlines()
    for name, m in metrics.items():
        median, lsq, delta = (float(v) for v in _row(lines, name)[:3])
        assert median == pytest.approx(m["abs_rel"], abs=1e-4)
        assert lsq == pytest.approx(m["abs_rel_lsq"], abs=1e-4)
        assert delta == pytest.approx(m["delta1"], abs=1e-3)
def _check_dense_detection(example: ModuleType, result: dict[str, Any], out: str) -> None:
    runs = ("BCE + L1", "yolo_criterion")
    assert "Held-out detections" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("metric "))
    assert header.split()[-4:] == ["BCE", "+", "L1", "yolo_criterion"], header
    for label in ("precision @ IoU 0.5", "recall @ IoU 0.5", "mean IoU of matches"):
        values = [float(v) for v in _row(lines, label)[-2:]]
        assert all(0.0 <= v <= 1.0 for v in values), (label, values)
    assert tuple(result["metrics"]) == runs
    for name in runs:
        recall = result["metrics"][name]["recall"]
        assert float(_row(lines, "recall @ IoU 0.5")[-2 + runs.index(name)]) == pytest.approx(
            recall, abs=5e-4)
    # yolo_criterion learns in the smoke run: its loss falls and it finds objects
    curve = result["losses"]["yolo_criterion"]
    assert np.all(np.isfinite(curve)) and curve[-10:].mean() < 0.7 * curve[:10].mean()
    assert result["metrics"]["yolo_criterion"]["recall"] > 0.15, result["metrics"]
def _check_long_tail(example: ModuleType, result: dict[str, Any], out: str) -> None:
    recalls = result["recalls"]
    names = ("cross-entropy", "class-balanced CE", "LDAM-DRW", "logit adjustment", "seesaw")
    assert tuple(recalls) == names
    counts = result["counts"]
    assert counts.max() == 100 * counts.min() and np.all(np.diff(counts) <= 0)  # ratio 100
    lines = out.splitlines()
    baseline = recalls["cross-entropy"].mean()
    for name in names:
        balanced, rare, gain = (float(v) for v in _row(lines, name))
        assert balanced == pytest.approx(recalls[name].mean(), abs=5e-4)
        assert rare == pytest.approx(recalls[name][list(example.RAREST)].mean(), abs=5e-4)
        assert gain == pytest.approx(recalls[name].mean() - baseline, abs=1e-3)
    # what the example is for: at least two long-tail losses beat plain cross-entropy in
    # balanced accuracy (seeds 0-3 of the smoke run: class-balanced CE and logit adjustment
    # by 0.06-0.16, seesaw by 0.02-0.06)
    better = [n for n in names[1:] if recalls[n].mean() > baseline + 0.02]
    assert len(better) >= 2, {n: recalls[n].mean() for n in names}


def _check_distillation(example: ModuleType, result: dict[str, Any], out: str) -> None:
    accuracies, sizes = result["accuracies"], result["parameters"]
    names = ("teacher", "student alone", "distilled T=2", "distilled T=8")
    assert tuple(accuracies) == names
    assert 0.08 < sizes["student alone"] / sizes["teacher"] < 0.12  # a tenth of the teacher
    lines = out.splitlines()
    for name in names:
        params, acc = (float(v) for v in _row(lines, name))
        assert params == sizes[name] and acc == pytest.approx(accuracies[name], abs=5e-4)
    for name in names[1:]:
        steps, scores = zip(*result["curves"][name], strict=True)
        assert steps == (50, 100, 150) and scores[-1] == accuracies[name]
    # what the example is for: the teacher beats the student alone, and distillation at
    # either temperature beats the student alone (seeds 0-3 of the smoke run: by 0.05-0.11)
    assert accuracies["teacher"] > accuracies["student alone"] + 0.03, accuracies
    for name in names[2:]:
        assert accuracies[name] > accuracies["student alone"] + 0.03, accuracies
def _check_set_prediction(example: ModuleType, result: dict[str, Any], out: str) -> None:
    metrics = result["metrics"]
    matched, fixed = metrics["DETR (matched)"], metrics["fixed order"]
    for values in (matched, fixed):
        assert all(0.0 <= v <= 1.0 for v in values.values()), values
    # 120 steps: the matched model's boxes are already far better (seeds 0-2: 0.48-0.50 vs
    # 0.30-0.32; the full run: 0.74 vs 0.48)
    assert matched["iou"] > fixed["iou"] + 0.1, metrics
    lines = out.splitlines()
    for label, key in (("matched-box IoU", "iou"), ("class accuracy", "accuracy"),
                       ("recall (class, IoU>=0.5)", "recall")):
        values = [float(v) for v in _row(lines, label)[-2:]]
        assert values == pytest.approx([matched[key], fixed[key]], abs=5e-4)
    assert "DETR (matched) wins" in out
def _check_keypoints(example: ModuleType, result: dict[str, Any], out: str) -> None:
    metrics = result["metrics"]
    models = ("heatmap MSE", "adaptive Wing", "SimCC")
    assert tuple(metrics) == ("mean shape", *models)
    baseline = metrics["mean shape"]
    # the mean shape of 512 polygons is off by ~4 px (NME ~0.14) on held-out images
    assert 0.08 < baseline["nme"] < 0.25, baseline
    for name in models:
        m = metrics[name]
        assert 0.0 <= m["pck"] <= 1.0 and m["px"] == pytest.approx(m["nme"] * example.SIZE)
        # the smoke run's 250 steps beat the mean shape with every model (by 0.05-0.08 NME at
        # seeds 1 and 2; at 150 steps heatmap MSE could still miss it)
        assert m["nme"] < baseline["nme"], (name, metrics)
        assert m["pck"] > baseline["pck"], (name, metrics)
    assert result["best"] == min(models, key=lambda name: metrics[name]["nme"])
    assert f"Winner: {result['best']} (lowest NME" in out
    assert "3 of 3 models beat the mean shape" in out
    # the printed table: one row per model with its NME, PCK and mean error
    lines = out.splitlines()
    for name, m in metrics.items():
        nme, pck, px = (float(v) for v in _row(lines, name))
        assert nme == pytest.approx(m["nme"], abs=1e-4) and pck == pytest.approx(m["pck"],
                                                                                 abs=1e-3)
        assert px == pytest.approx(m["px"], abs=0.01)


SMOKE_CHECKS: dict[str, tuple[tuple[str, ...], Callable[..., None]]] = {
    # example: (the PNGs it saves, the check of its output)
    "quickstart": (("quickstart_losses.png",), _check_quickstart),
    "segmentation": (("segmentation_losses.png", "segmentation_masks.png"),
                     _check_segmentation),
    "detection": (("detection_losses.png", "detection_boxes.png"), _check_detection),
    "metric_learning": (("metric_learning_embeddings.png",), _check_metric_learning),
    "multitask": (("multitask_losses.png", "multitask_metrics.png"), _check_multitask),
    "image_restoration": (("image_restoration_crops.png",), _check_image_restoration),
    "vae": (("vae_samples.png",), _check_vae),
    "depth": (("depth_predictions.png",), _check_depth),
    "dense_detection": (("dense_detection.png",), _check_dense_detection),
    "long_tail": (("long_tail_recall.png",), _check_long_tail),
    "distillation": (("distillation_curves.png",), _check_distillation),
    "set_prediction": (("set_prediction_losses.png", "set_prediction_boxes.png"),
                       _check_set_prediction),
    "keypoints": (("keypoints_predictions.png",), _check_keypoints),
}


# examples that need a fresh process (examples/sharded.py asks XLA for 8 CPU devices
# before JAX is imported): run by their own test below
SUBPROCESS_EXAMPLES = ("sharded",)


def test_every_example_has_a_smoke_check() -> None:
    scripts = {path.stem for path in EXAMPLES.glob("*.py") if not path.stem.startswith("_")}
    assert scripts == set(SMOKE_CHECKS) | set(SUBPROCESS_EXAMPLES)


def test_sharded_example_matches_one_device(tmp_path: Path) -> None:
    """examples/sharded.py --smoke on 8 simulated CPU devices, in a subprocess: the sharded
    value and gradient with ``axis_name`` equal the single-device ones for every
    global-batch loss, without it they differ, and the sharded training run follows the
    one-device run step by step."""
    import os
    import subprocess

    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "")
                         + " --xla_force_host_platform_device_count=8").strip()}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "sharded.py"), "--smoke", "--seed", "1",
         "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert "8 devices (cpu)" in out
    for loss in ("batch Dice", "NT-Xent / InfoNCE", "SigLIP", "batch-hard triplet"):
        single, sharded, value_diff, grad_diff, naive = (float(v) for v in _row(lines, loss))
        assert value_diff <= 1e-5 * max(1.0, abs(single)), (loss, value_diff)
        assert grad_diff <= 1e-5, (loss, grad_diff)
        assert single == pytest.approx(sharded, rel=1e-5)
        assert abs(naive - single) > 1e-3, (loss, naive, single)  # a different loss per shard
    one, sharded = (float(_row(lines, run)[0]) for run in ("one device", "8 devices, axis_name"))
    assert one == pytest.approx(sharded, rel=1e-5, abs=1e-6)
    png = tmp_path / "sharded_training.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and str(png) in out


@pytest.mark.parametrize("name", list(SMOKE_CHECKS))
def test_example_smoke_run(name: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    example = _load(name)
    with jax.numpy_dtype_promotion("standard"):
        result = example.main(["--smoke", "--seed", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    pngs, check = SMOKE_CHECKS[name]
    for png_name in pngs:
        png = tmp_path / png_name
        assert png.is_file(), png_name
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert str(png) in out
    check(example, result, out)


def test_smoke_flag_swaps_defaults_but_explicit_flags_win() -> None:
    example = _load("detection")
    args = example.parse_args(["--smoke", "--steps", "7"])
    assert args.steps == 7 and args.train_images == example.SMOKE["train_images"]
    assert example.parse_args([]).train_images == 4096  # the full run without --smoke


def test_positive_flags_fail_with_one_error_naming_them_all(
        capsys: pytest.CaptureFixture[str]) -> None:
    example = _load("detection")
    with pytest.raises(SystemExit):
        example.parse_args(["--eval-every", "0"])
    assert ("--steps, --batch-size, --base-channels, --train-images, --test-images and "
            "--eval-every must be >= 1") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _load("quickstart").parse_args(["--batch-size", "-3"])
    assert "--steps and --batch-size must be >= 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- _common


def test_batch_schedule_is_shuffled_epochs_of_whole_batches() -> None:
    common = _load("quickstart").common
    schedule = common.batch_schedule(0, size=10, batch_size=4, steps=5)
    assert [len(b) for b in schedule] == [4] * 5
    # two whole batches per epoch (the last partial one dropped), each epoch without repeats
    for first in (0, 2):
        epoch = np.concatenate(schedule[first:first + 2])
        assert len(set(epoch.tolist())) == 8 and epoch.max() < 10
    # the same batches as the stream the one-run examples draw from
    stream = common.batches(np.random.default_rng(0), 10, 4)
    for batch in schedule:
        np.testing.assert_array_equal(batch, next(stream))
    assert [len(b) for b in common.batch_schedule(0, 3, 8, 2)] == [3, 3]  # capped at the size


def test_table_aligns_columns_and_formats_each_one() -> None:
    common = _load("quickstart").common
    table = common.Table("model", ["PSNR (dB)", "x"], label_width=3, formats=[".2f", "+.1f"])
    assert table.header == "model  PSNR (dB)       x"
    assert table.row("L2", [28.123, 2.0]) == "L2         28.12    +2.0"
    assert table.row("ab", ["text", "n/a"]) == "ab     text       n/a"  # text left-aligned
    assert table.rule == "-" * len(table.header)
    with pytest.raises(ValueError, match="2 columns but 1 formats"):
        common.Table("", ["a", "b"], formats=[".3f"])


def test_init_model_gives_the_parameters_of_the_eager_constructor() -> None:
    common = _load("quickstart").common
    jitted = common.init_model(lambda: nnx.Linear(3, 4, rngs=nnx.Rngs(5)))
    eager = nnx.Linear(3, 4, rngs=nnx.Rngs(5))
    np.testing.assert_array_equal(jitted.kernel[...], eager.kernel[...])
    np.testing.assert_array_equal(jitted.bias[...], eager.bias[...])
    assert not np.all(np.asarray(eager.kernel[...]) == 0.0)


def test_smooth_is_an_exponential_moving_average() -> None:
    common = _load("quickstart").common
    values = np.array([1.0, 3.0, 3.0])
    alpha = 2.0 / 4.0  # span 3
    expected = [1.0, alpha * 3 + (1 - alpha) * 1.0]
    expected.append(alpha * 3 + (1 - alpha) * expected[-1])
    np.testing.assert_allclose(common.smooth(values, 3), expected)
    assert common.smooth(np.zeros(0), 5).shape == (0,)


# ----------------------------------------------------------------------------- quickstart


def test_quickstart_data_is_imbalanced_and_weights_balance_it() -> None:
    quickstart = _load("quickstart")
    data = quickstart.load_data(seed=0, minority_fraction=0.1)
    counts = np.bincount(data["y_train"], minlength=10)
    test_counts = np.bincount(data["y_test"], minlength=10)
    assert counts[:5].min() > 5 * counts[5:].max()  # classes 5-9 cut to ~10%
    assert test_counts.min() > 0.8 * test_counts.max()  # the test split stays balanced
    assert data["x_train"].shape[1:] == (8, 8, 1) and data["x_train"].dtype == np.float32
    assert data["x_train"].min() >= 0.0 and data["x_train"].max() <= 1.0
    weights = quickstart.inverse_frequency_weights(data["y_train"])
    # every class carries the same total weight, and the weights average to 1 per sample
    np.testing.assert_allclose(weights * counts, np.full(10, counts.sum() / 10), rtol=1e-6)
    np.testing.assert_allclose(np.sum(weights * counts) / counts.sum(), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------- segmentation


def test_segmentation_data_is_deterministic_and_imbalanced() -> None:
    example = _load("segmentation")
    data = _split_data(example, 64, 16, labels="y_train")
    assert data["y_train"].shape == (64, example.SIZE, example.SIZE)
    counts = np.bincount(data["y_train"].reshape(-1), minlength=example.NUM_CLASSES)
    assert np.all(counts > 0)
    share = counts / counts.sum()
    assert share[0] > 0.6  # mostly background
    assert share[3] < 0.05 and share[3] < share[1] / 3 and share[3] < share[2] / 3  # tiny crosses


def test_segmentation_iou_per_class_matches_a_hand_count() -> None:
    example = _load("segmentation")
    # true \ predicted: class 0 has TP 5, FN 1 (to 1), FP 2 (from 1) -> 5 / 8
    matrix = np.zeros((example.NUM_CLASSES, example.NUM_CLASSES), np.int64)
    matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1] = 5, 1, 2, 3
    iou = example.iou_per_class(matrix)
    np.testing.assert_allclose(iou[:2], [5 / 8, 3 / 6])
    assert np.isnan(iou[2]) and np.isnan(iou[3])  # absent from targets and predictions


# ----------------------------------------------------------------------------- detection


def test_detection_data_is_deterministic_and_boxes_are_valid() -> None:
    example = _load("detection")
    data = _split_data(example, 64, 16, labels="y_train")
    assert data["y_train"].shape == (64, 4) and data["y_train"].dtype == np.float32
    boxes = np.concatenate([data["y_train"], data["y_test"]])
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
    assert np.all(boxes[:, 2:] > boxes[:, :2])  # xyxy with positive width and height
    # the rectangle is where the box says: its interior is brighter than the background
    # on average (the distractors may cover part of the rest of the image)
    for image, box in zip(data["x_train"][:8], data["y_train"][:8], strict=True):
        x1, y1, x2, y2 = np.round(box * example.SIZE).astype(int)
        assert image[y1:y2, x1:x2].mean() > image.mean()


def test_box_iou_matches_a_hand_count() -> None:
    common = _load("detection").common  # the held-out metric of detection and multitask
    a = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    # overlap 1 of union 4 + 4 - 1; disjoint; identical
    np.testing.assert_allclose(common.box_iou(a, b), [1 / 7, 0.0, 1.0])
    # identical -> 1; a 1x1 box against a 2x1 box covering it -> 1/2; disjoint -> 0
    a = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    np.testing.assert_allclose(common.box_iou(a, b), [1.0, 0.5, 0.0])


# ----------------------------------------------------------------------------- metric learning


def test_metric_learning_split_holds_out_whole_classes() -> None:
    example = _load("metric_learning")
    kw = {"canvas": 20, "rotation": 30.0, "noise": 0.2}
    data = example.load_data(seed=0, unseen=(6, 7, 8, 9), **kw)
    again = example.load_data(seed=0, unseen=(6, 7, 8, 9), **kw)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
    assert set(data["digit_train"].tolist()) == set(range(6))
    assert set(data["digit_seen"].tolist()) == set(range(6))
    assert set(data["digit_unseen"].tolist()) == {6, 7, 8, 9}
    # the class matrices' labels are the seen digits renumbered 0..K-1
    np.testing.assert_array_equal(data["seen_digits"][data["y_train"]], data["digit_train"])
    assert data["y_train"].dtype == np.int32 and data["y_train"].max() == 5
    assert data["x_train"].shape[1:] == (8, 8, 1)  # placed afresh at every step
    for key in ("x_seen", "x_unseen"):
        assert data[key].shape[1:] == (20, 20, 1) and data[key].dtype == np.float32
        assert data[key].min() >= 0.0 and data[key].max() <= 1.0
    assert len(data["x_train"]) + len(data["x_seen"]) + len(data["x_unseen"]) == 1797


def test_metric_learning_place_moves_rotates_and_adds_noise() -> None:
    example = _load("metric_learning")
    images = np.zeros((50, 8, 8, 1), np.float32)
    images[:, 1:7, 3:5, 0] = 1.0  # a vertical bar
    # no rotation, scale 1: the bar is copied whole, somewhere on the canvas
    placed = example.place(images, np.random.default_rng(0), canvas=16, rotation=0.0,
                           noise=0.0, scale=(1.0, 1.0))
    assert placed.shape == (50, 16, 16, 1)
    np.testing.assert_allclose(placed.sum(axis=(1, 2, 3)), images[0].sum(), rtol=1e-5)
    centres = [np.argwhere(p[..., 0] > 0.5).mean(axis=0) for p in placed]
    assert np.ptp(np.array(centres), axis=0).min() >= 4  # it moves by several pixels
    same = example.place(images[:1], np.random.default_rng(0), canvas=8, rotation=0.0,
                         noise=0.0, scale=(1.0, 1.0))
    np.testing.assert_allclose(same, images[:1], atol=1e-6)  # canvas = digit: identity
    # rotations up to 90 degrees lay some of the (vertical) bars nearly flat
    rotated = example.place(images, np.random.default_rng(3), canvas=16, rotation=90.0,
                            noise=0.0, scale=(1.0, 1.0))[..., 0]
    flat = [np.ptp(np.nonzero(r > 0.5)[1]) > np.ptp(np.nonzero(r > 0.5)[0]) for r in rotated]
    assert 0 < sum(flat) < len(flat)
    noisy = example.place(images, np.random.default_rng(0), canvas=16, rotation=30.0,
                          noise=0.3)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0 and not np.array_equal(noisy, placed)


def test_metric_learning_recall_at_1_by_hand() -> None:
    example = _load("metric_learning")
    # rows 0 and 1 are each other's nearest neighbour (same label): hits; row 2's nearest is
    # row 3 (label 1 vs 2): miss; row 3's nearest is row 2: miss -> 2 / 4
    embeddings = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
    labels = np.array([0, 0, 1, 2])
    assert example.recall_at_1(embeddings, labels) == 0.5
    # scale does not matter (cosine similarity), and a row is never its own neighbour
    assert example.recall_at_1(embeddings * np.array([[3.0], [0.5], [2.0], [7.0]]), labels) == 0.5
    assert example.recall_at_1(embeddings, np.array([0, 0, 1, 1])) == 1.0


def test_metric_learning_pca_2d_projects_on_the_leading_components() -> None:
    example = _load("metric_learning")
    rng = np.random.default_rng(0)
    # points on the unit circle of the (e0, e1) plane, tiny spread elsewhere
    angles = rng.uniform(0, 2 * math.pi, 200)
    x = np.zeros((200, 5))
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    x[:, 2:] = 1e-3 * rng.standard_normal((200, 3))
    xy = example.pca_2d(x)
    assert xy.shape == (200, 2)
    # the projection keeps the pairwise distances of the (normalised, centred) points
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)
    d_full = np.linalg.norm(normalised[:, None] - normalised[None], axis=-1)
    d_2d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.testing.assert_allclose(d_2d, d_full, atol=1e-2)


# ----------------------------------------------------------------------------- multitask


def test_multitask_data_is_deterministic_and_consistent() -> None:
    example = _load("multitask")
    data = _split_data(example, 64, 16, labels="mask_train")
    size = example.SIZE
    assert data["mask_train"].shape == (64, size, size) and data["mask_train"].dtype == np.int32
    assert data["box_train"].shape == (64, 4) and data["box_train"].dtype == np.float32
    assert data["class_train"].shape == (64,) and data["class_train"].dtype == np.int32
    assert set(np.unique(data["mask_train"])) == {0, 1}
    assert set(np.unique(data["class_train"])) == set(range(example.NUM_SHAPES))
    # every box is the tight box of its mask, in [0, 1] xyxy
    for mask, box in zip(data["mask_train"], data["box_train"], strict=True):
        rows, cols = np.nonzero(mask)
        expected = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / size
        np.testing.assert_allclose(box, expected)
    assert np.all(data["box_train"] >= 0) and np.all(data["box_train"] <= 1)
    # the object is the bright part of the image (the distractor dots are small)
    images, masks = data["x_train"][..., 0], data["mask_train"].astype(bool)
    assert images[masks].mean() > images[~masks].mean() + 0.3


def test_multitask_mask_miou_matches_a_hand_count() -> None:
    example = _load("multitask")
    # masks: object IoU 2 / 4 (2 hits, 1 miss, 1 false alarm), background IoU 4 / 6
    predicted = np.array([[1, 1, 1, 0, 0, 0, 0, 0]])
    target = np.array([[1, 1, 0, 1, 0, 0, 0, 0]])
    assert np.isclose(example.mask_miou(predicted, target), (2 / 4 + 4 / 6) / 2)


# ----------------------------------------------------------------------------- image restoration


def test_image_restoration_data_holds_out_the_right_columns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    example = _load("image_restoration")
    # stand-in photos whose pixel values encode (photo, column): a crop tells where it came from
    height, width = 60, 100
    columns = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :, None],
                              (height, width, 3))
    photos = {name: columns + 1000.0 * i for i, name in enumerate(example.PHOTOS)}
    monkeypatch.setattr(example, "load_photos", lambda: photos)
    monkeypatch.setattr(example, "HOLDOUT_COLUMNS", 30)
    data = example.make_data(0, train_crops=50, crop=12, test_crops=3, test_crop=16,
                             sigma=0.1)
    again = example.make_data(0, train_crops=50, crop=12, test_crops=3, test_crop=16,
                              sigma=0.1)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
        assert value.dtype == np.float32
    assert data["x_train"].shape == (50, 12, 12, 3)
    assert data["clean_test"].shape == data["noisy_test"].shape == (6, 16, 16, 3)
    train_columns = data["x_train"] % 1000.0
    test_columns = data["clean_test"] % 1000.0
    assert train_columns.max() < width - 30 <= test_columns.min()  # disjoint regions
    # both photos in training; the held-out crops alternate between them
    assert set(np.unique(data["x_train"] // 1000.0)) == {0.0, 1.0}
    np.testing.assert_array_equal(data["clean_test"][:, 0, 0, 0] // 1000.0, [0, 1] * 3)
    noise = data["noisy_test"] - data["clean_test"]
    assert abs(noise.std() - 0.1) < 0.01 and abs(noise.mean()) < 0.01


def test_image_restoration_real_photos_load_in_unit_range() -> None:
    example = _load("image_restoration")
    photos = example.load_photos()
    assert tuple(photos) == example.PHOTOS
    for image in photos.values():
        assert image.shape == (427, 640, 3) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_image_restoration_untrained_denoiser_is_the_identity() -> None:
    example = _load("image_restoration")
    model = example.Denoiser(8, 3, rngs=nnx.Rngs(0))
    noisy = jax.random.uniform(jax.random.key(0), (2, 20, 24, 3))
    np.testing.assert_array_equal(np.asarray(model(noisy)), np.asarray(noisy))
    assert len(model.hidden) == 2  # depth 3 = two hidden convolutions + the output one


def test_image_restoration_quality_metrics_match_their_definitions() -> None:
    example = _load("image_restoration")
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.0, 1.0, (3, 32, 32, 3)).astype(np.float32)
    noisy = clean + (0.05 * rng.standard_normal(clean.shape)).astype(np.float32)
    psnr, ssim = example.quality(jnp.asarray(noisy), jnp.asarray(clean))
    mse = np.mean((noisy.astype(np.float64) - clean) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(psnr, 10.0 * np.log10(1.0 / mse), rtol=1e-5)
    assert psnr.shape == ssim.shape == (3,)
    assert np.all(ssim < 1.0) and np.all(ssim > 0.0)
    _, same = example.quality(jnp.asarray(clean), jnp.asarray(clean))
    np.testing.assert_allclose(same, 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- VAE


def test_vae_elbo_terms_match_the_closed_forms() -> None:
    example = _load("vae")
    model = example.VAE(latent_dim=3, hidden=16, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (5, example.PIXELS))
    key = jax.random.key(2)
    reconstruction, kl = example.elbo_terms(model, x, key)
    assert reconstruction.shape == kl.shape == (5,)
    # the same computation, term by term, in float64 NumPy
    mean, logvar = (np.asarray(a, np.float64) for a in model.encode(x))
    eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
    z = mean + np.exp(0.5 * logvar) * eps
    logits = np.asarray(model.decode(jnp.asarray(z, jnp.float32)), np.float64)
    xn = np.asarray(x, np.float64)
    # Bernoulli negative log-likelihood from logits: softplus(l) - x * l, summed over pixels
    expected_reconstruction = np.sum(np.logaddexp(0.0, logits) - xn * logits, axis=-1)
    # KL(N(m, exp(lv)) || N(0, 1)) summed over the latent dimensions
    expected_kl = 0.5 * np.sum(np.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)
    np.testing.assert_allclose(reconstruction, expected_reconstruction, rtol=1e-5)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(kl) > 0.0)


def test_vae_reparameterize_is_differentiable_and_has_the_right_moments() -> None:
    example = _load("vae")
    mean = jnp.array([[0.5, -2.0]])
    logvar = jnp.array([[0.0, 2.0 * math.log(3.0)]])  # sigma 1 and 3
    keys = jax.random.split(jax.random.key(0), 20000)
    samples = jax.vmap(lambda k: example.reparameterize(k, mean, logvar))(keys)[:, 0]
    np.testing.assert_allclose(samples.mean(axis=0), [0.5, -2.0], atol=0.06)
    np.testing.assert_allclose(samples.std(axis=0), [1.0, 3.0], rtol=0.03)
    # d z / d mean = 1 and d z / d logvar = eps * sigma / 2, sample by sample
    key = jax.random.key(3)
    eps = jax.random.normal(key, mean.shape)
    grad_mean, grad_logvar = jax.grad(
        lambda m, lv: jnp.sum(example.reparameterize(key, m, lv)), argnums=(0, 1))(mean, logvar)
    np.testing.assert_allclose(grad_mean, np.ones((1, 2)))
    np.testing.assert_allclose(grad_logvar, 0.5 * eps * jnp.exp(0.5 * logvar), rtol=1e-6)


def test_vae_tile_places_every_image() -> None:
    example = _load("vae")
    images = np.arange(3 * example.PIXELS, dtype=np.float32).reshape(3, example.PIXELS)
    mosaic = example.tile(images, columns=2)
    side = example.SIDE
    assert mosaic.shape == (2 * side + 1, 2 * side + 1)
    np.testing.assert_array_equal(mosaic[:side, :side], images[0].reshape(side, side))
    np.testing.assert_array_equal(mosaic[:side, side + 1:], images[1].reshape(side, side))
    np.testing.assert_array_equal(mosaic[side + 1:, :side], images[2].reshape(side, side))
    assert np.all(np.isnan(mosaic[side, :])) and np.all(np.isnan(mosaic[side + 1:, side + 1:]))


def test_depth_scenes_are_positive_and_scaled_per_image() -> None:
    example = _load("depth")
    data = example.make_data(0, train_images=6, test_images=2, size=16)
    assert data["x_train"].shape == (6, 16, 16, 3) and data["y_test"].shape == (2, 16, 16, 1)
    assert np.all(data["y_train"] > 0) and np.all((data["x_train"] >= 0) & (data["x_train"] <= 1))
    # the same scene rendered twice has the same depth; the factor differs per image
    image, depth = example.render_scene(np.random.default_rng(3), 16)
    again, depth_again = example.render_scene(np.random.default_rng(3), 16)
    np.testing.assert_array_equal(depth, depth_again)
    np.testing.assert_array_equal(image, again)
    assert depth.min() > 0 and depth.max() <= 12.0
# ----------------------------------------------------------------------------- keypoints


def test_keypoints_data_is_deterministic_and_vertices_are_ordered() -> None:
    example = _load("keypoints")
    data = _split_data(example, 12, 4, labels="y_train")
    keypoints = data["y_train"]
    assert keypoints.shape == (12, example.K, 2)
    assert keypoints.min() >= 0.0 and keypoints.max() <= example.SIZE - 1
    # vertex k sits near the angle 72 k degrees (clockwise from up) around the centroid:
    # the keypoints have identities
    offset = keypoints - keypoints.mean(axis=1, keepdims=True)
    angles = np.degrees(np.arctan2(offset[..., 0], -offset[..., 1])) % 360
    expected = 72.0 * np.arange(example.K)
    gap = np.abs((angles - expected + 180) % 360 - 180)
    assert gap.max() < 36.0 + 25.0, gap.max()
    # the polygon is brighter than the background around it
    inside = example._inside(keypoints[0], *np.meshgrid(np.arange(32.0), np.arange(32.0)))
    image = data["x_train"][0, ..., 0]
    assert image[inside].mean() > image[~inside].mean() + 0.2


def test_keypoints_heatmap_coordinates_and_metrics() -> None:
    example = _load("keypoints")
    keypoints = jnp.array([[[4.5, 9.5], [20.0, 3.0]]])
    # a keypoint at the centre of heatmap pixel (2, 4) (image pixels 4-5, 8-9) peaks there
    heatmap = example.jaxloss.gaussian_heatmaps(example.to_heatmap(keypoints),
                                                shape=(example.HEATMAP, example.HEATMAP))
    assert tuple(np.unravel_index(int(np.argmax(heatmap[0, ..., 0])), (16, 16))) == (4, 2)
    np.testing.assert_allclose(example.from_heatmap(example.to_heatmap(keypoints)), keypoints)
    true = np.zeros((2, 2, 2))
    predicted = true.copy()
    predicted[0, 0] = [3.0, 4.0]  # 5 px off; the other three exact
    m = example.keypoint_metrics(predicted, true)
    assert m["px"] == pytest.approx(1.25) and m["nme"] == pytest.approx(1.25 / example.SIZE)
    assert m["pck"] == pytest.approx(0.75)  # 5 px > 1.6 px
