"""Smoke test of examples/multitask.py: it runs end to end with a tiny step count.

The script runs in a subprocess (its own JAX configuration, as a user runs
it) with 3 training steps per strategy on 64 training and 16 held-out images.
Nearly all of its time is imports and the four compilations (three
loss-weighting steps and PCGrad's Jacobian step): roughly 30-50 s on 2 idle
CPU cores; the subprocess timeout is generous because the machine may be
shared, and fails the test rather than letting it hang. The other tests check
the generated data and the example's NumPy metrics without training anything.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "multitask.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STRATEGIES = ("fixed weights", "uncertainty", "FAMO", "PCGrad")


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("multitask_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multitask_example_runs_and_writes_pngs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "3", "--batch-size", "8", "--seed", "1",
         "--train-images", "64", "--test-images", "16", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in ("multitask_losses.png", "multitask_metrics.png"):
        png = tmp_path / name
        assert png.is_file(), name
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert str(png) in result.stdout
    assert "Held-out metrics" in result.stdout
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("strategy"))
    for column in ("mask mIoU", "box IoU", "class acc", "ms/step"):
        assert column in header
    # one row per strategy: three metrics in [0, 1], then a positive time per step and the
    # ratio to the fixed-weight step (1 for the fixed-weight row itself)
    for strategy in STRATEGIES:
        rows = [line for line in lines if line.startswith(strategy + " ")]
        assert len(rows) == 1, strategy
        cells = rows[0][len(strategy):].split()
        metrics, ms, ratio = [float(v) for v in cells[:3]], float(cells[3]), float(cells[4])
        assert all(0.0 <= v <= 1.0 for v in metrics), rows[0]
        assert ms > 0.0 and ratio > 0.0, rows[0]
        if strategy == "fixed weights":
            assert ratio == 1.0
    pcgrad = next(line for line in lines if line.startswith("PCGrad "))
    assert "gradient-level" in pcgrad  # no loss weights to report
    # the weightings report their final task weights: three finite non-negative numbers
    for strategy in STRATEGIES[:3]:
        row = next(line for line in lines if line.startswith(strategy + " "))
        weights = [float(v) for v in row[len(strategy):].split()[5:]]
        assert len(weights) == 3 and all(np.isfinite(w) and w >= 0 for w in weights), row


def test_multitask_data_is_deterministic_and_consistent() -> None:
    example = _load_example()
    data = example.make_data(seed=3, train_images=64, test_images=16)
    again = example.make_data(seed=3, train_images=64, test_images=16)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
    size = example.SIZE
    assert data["x_train"].shape == (64, size, size, 1) and data["x_train"].dtype == np.float32
    assert data["mask_train"].shape == (64, size, size) and data["mask_train"].dtype == np.int32
    assert data["box_train"].shape == (64, 4) and data["box_train"].dtype == np.float32
    assert data["class_train"].shape == (64,) and data["class_train"].dtype == np.int32
    assert not np.array_equal(data["x_train"][:16], data["x_test"])  # distinct splits
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
    other = example.make_data(seed=4, train_images=64, test_images=16)
    assert not np.array_equal(other["mask_train"], data["mask_train"])


def test_metrics_match_hand_counts() -> None:
    example = _load_example()
    # boxes: identical -> 1; a 1x1 box against a 2x1 box covering it -> 1/2; disjoint -> 0
    a = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    np.testing.assert_allclose(example.box_iou(a, b), [1.0, 0.5, 0.0])
    # masks: object IoU 2 / 4 (2 hits, 1 miss, 1 false alarm), background IoU 4 / 6
    predicted = np.array([[1, 1, 1, 0, 0, 0, 0, 0]])
    target = np.array([[1, 1, 0, 1, 0, 0, 0, 0]])
    assert np.isclose(example.mask_miou(predicted, target), (2 / 4 + 4 / 6) / 2)
