"""Smoke test of examples/detection.py: it runs end to end with a tiny step count.

The script runs in a subprocess (its own JAX configuration, as a user runs
it) with 3 training steps per loss on 64 training and 16 held-out images,
which keeps it to roughly 20-40 s on 2 CPU cores (mostly imports and the
compilations); the subprocess timeout fails the test rather than letting it
hang. The other tests check the generated data and the example's NumPy IoU
without training anything.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "detection.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("detection_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_detection_example_runs_and_writes_pngs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "3", "--batch-size", "8", "--seed", "1",
         "--train-images", "64", "--test-images", "16", "--eval-every", "2",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in ("detection_losses.png", "detection_boxes.png"):
        png = tmp_path / name
        assert png.is_file(), name
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert str(png) in result.stdout
    assert "IoU of the predicted box with the true box, held-out set" in result.stdout
    lines = result.stdout.splitlines()
    header = [line for line in lines if line.startswith("held-out boxes")]
    assert header and header[0].split()[-3:] == ["L1", "GIoU", "CIoU"], header
    # a mean, a median and two threshold rows, three losses each, every value in [0, 1]
    for label in ("mean IoU", "median IoU", "IoU > 0.5", "IoU > 0.75"):
        rows = [line for line in lines if line.startswith(label)]
        assert rows, label
        values = [float(v) for v in rows[0].split()[-3:]]
        assert all(0.0 <= v <= 1.0 for v in values), rows[0]


def test_detection_data_is_deterministic_and_boxes_are_valid() -> None:
    example = _load_example()
    data = example.make_data(seed=3, train_images=64, test_images=16)
    again = example.make_data(seed=3, train_images=64, test_images=16)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
    assert data["x_train"].shape == (64, example.SIZE, example.SIZE, 1)
    assert data["x_train"].dtype == np.float32
    assert data["y_train"].shape == (64, 4) and data["y_train"].dtype == np.float32
    assert not np.array_equal(data["x_train"][:16], data["x_test"])  # distinct splits
    boxes = np.concatenate([data["y_train"], data["y_test"]])
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
    assert np.all(boxes[:, 2:] > boxes[:, :2])  # xyxy with positive width and height
    # the rectangle is where the box says: its interior is brighter than the background
    # on average (the distractors may cover part of the rest of the image)
    for image, box in zip(data["x_train"][:8], data["y_train"][:8], strict=True):
        x1, y1, x2, y2 = np.round(box * example.SIZE).astype(int)
        assert image[y1:y2, x1:x2].mean() > image.mean()
    other = example.make_data(seed=4, train_images=64, test_images=16)
    assert not np.array_equal(other["y_train"], data["y_train"])


def test_box_iou_matches_a_hand_count() -> None:
    example = _load_example()
    a = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    # overlap 1 of union 4 + 4 - 1; disjoint; identical
    np.testing.assert_allclose(example.box_iou(a, b), [1 / 7, 0.0, 1.0])
