"""Smoke test of examples/segmentation.py: it runs end to end with a tiny step count.

The script runs in a subprocess (its own JAX configuration, as a user runs
it) with 3 training steps (the last one the Lovasz fine-tune) on 32 training
and 8 held-out images, which keeps it to roughly 20-40 s on 2 CPU cores
(mostly imports and the compilations); the subprocess timeout fails the test
rather than letting it hang. A second test checks the generated data without
training anything.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "segmentation.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("segmentation_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segmentation_example_runs_and_writes_pngs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "3", "--batch-size", "8", "--seed", "1",
         "--train-images", "32", "--test-images", "8", "--eval-every", "2",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in ("segmentation_losses.png", "segmentation_masks.png"):
        png = tmp_path / name
        assert png.is_file(), name
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert str(png) in result.stdout
    assert "Per-class IoU on the held-out set" in result.stdout
    for run in ("cross-entropy", "Dice+CE", "Lovász"):
        assert run in result.stdout
    # one row per class and a mean-IoU row, three runs each, every IoU in [0, 1] (or nan)
    lines = result.stdout.splitlines()
    for label in ("background", "rectangle", "disc", "cross", "mean IoU"):
        rows = [line for line in lines if line.startswith(label)]
        assert rows, label
        values = [float(v) for v in rows[0].split()[-3:]]
        assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in values), rows[0]


def test_segmentation_data_is_deterministic_and_imbalanced() -> None:
    example = _load_example()
    data = example.make_data(seed=3, train_images=64, test_images=16)
    again = example.make_data(seed=3, train_images=64, test_images=16)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
    assert data["x_train"].shape == (64, example.SIZE, example.SIZE, 1)
    assert data["x_train"].dtype == np.float32
    assert data["y_train"].shape == (64, example.SIZE, example.SIZE)
    assert not np.array_equal(data["x_train"][:16], data["x_test"])  # distinct splits
    counts = np.bincount(data["y_train"].reshape(-1), minlength=example.NUM_CLASSES)
    assert np.all(counts > 0)
    share = counts / counts.sum()
    assert share[0] > 0.6  # mostly background
    assert share[3] < 0.05 and share[3] < share[1] / 3 and share[3] < share[2] / 3  # tiny crosses
    # a different seed gives different images
    other = example.make_data(seed=4, train_images=64, test_images=16)
    assert not np.array_equal(other["y_train"], data["y_train"])


def test_iou_per_class_matches_a_hand_count() -> None:
    example = _load_example()
    # true \ predicted: class 0 has TP 5, FN 1 (to 1), FP 2 (from 1) -> 5 / 8
    matrix = np.zeros((example.NUM_CLASSES, example.NUM_CLASSES), np.int64)
    matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1] = 5, 1, 2, 3
    iou = example.iou_per_class(matrix)
    np.testing.assert_allclose(iou[:2], [5 / 8, 3 / 6])
    assert np.isnan(iou[2]) and np.isnan(iou[3])  # absent from targets and predictions
