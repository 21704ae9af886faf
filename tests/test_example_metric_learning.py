"""Smoke test of examples/metric_learning.py: it runs end to end with a tiny step count.

The script runs in a subprocess (its own JAX configuration, as a user runs
it) with 3 training steps per loss on batches of 16, which keeps it to roughly
30-50 s on 2 CPU cores (mostly imports and three compilations); the subprocess
timeout fails the test rather than letting it hang. The other tests check the
data split, the corruption, recall@1 and the PCA projection without training.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "metric_learning.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROWS = ("raw pixels", "untrained network", "batch-hard triplet", "ArcFace", "SupCon")


def _load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("metric_learning_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metric_learning_example_runs_and_writes_png(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "3", "--batch-size", "16", "--seed", "1",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    png = tmp_path / "metric_learning_embeddings.png"
    assert png.is_file()
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert str(png) in result.stdout
    assert "Recall@1 on held-out images" in result.stdout
    lines = result.stdout.splitlines()
    for label in ROWS:  # one row per model: recall@1 on seen and on unseen classes
        rows = [line for line in lines if line.startswith(label)]
        assert rows, label
        values = [float(v) for v in rows[0].split()[-2:]]
        assert all(0.0 <= v <= 1.0 for v in values), rows[0]


def test_data_split_holds_out_whole_classes() -> None:
    example = _load_example()
    data = example.load_data(seed=0, unseen=(7, 8, 9), shift=1, noise=0.3)
    again = example.load_data(seed=0, unseen=(7, 8, 9), shift=1, noise=0.3)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
    assert set(data["digit_train"].tolist()) == set(range(7))
    assert set(data["digit_seen"].tolist()) == set(range(7))
    assert set(data["digit_unseen"].tolist()) == {7, 8, 9}
    # ArcFace's labels are the seen digits renumbered 0..K-1
    np.testing.assert_array_equal(data["seen_digits"][data["y_train"]], data["digit_train"])
    assert data["y_train"].dtype == np.int32 and data["y_train"].max() == 6
    for key in ("x_train", "x_seen", "x_unseen"):
        assert data[key].shape[1:] == (8, 8, 1) and data[key].dtype == np.float32
        assert data[key].min() >= 0.0 and data[key].max() <= 1.0
    assert len(data["x_train"]) + len(data["x_seen"]) + len(data["x_unseen"]) == 1797


def test_corrupt_shifts_and_adds_noise() -> None:
    example = _load_example()
    images = np.zeros((3, 8, 8, 1), np.float32)
    images[:, 3, 4, 0] = 1.0  # one lit pixel
    shifted = example.corrupt(images, np.random.default_rng(0), shift=1, noise=0.0)
    for image in shifted[..., 0]:
        (y,), (x,) = np.nonzero(image)
        assert abs(y - 3) <= 1 and abs(x - 4) <= 1 and image[y, x] == 1.0
    same = example.corrupt(images, np.random.default_rng(0), shift=0, noise=0.0)
    np.testing.assert_array_equal(same, images)
    noisy = example.corrupt(images, np.random.default_rng(0), shift=0, noise=0.3)
    assert noisy.shape == images.shape and not np.array_equal(noisy, images)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0


def test_recall_at_1_by_hand() -> None:
    example = _load_example()
    # rows 0 and 1 are each other's nearest neighbour (same label): hits; row 2's nearest is
    # row 3 (label 1 vs 2): miss; row 3's nearest is row 2: miss -> 2 / 4
    embeddings = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
    labels = np.array([0, 0, 1, 2])
    assert example.recall_at_1(embeddings, labels) == 0.5
    # scale does not matter (cosine similarity), and a row is never its own neighbour
    assert example.recall_at_1(embeddings * np.array([[3.0], [0.5], [2.0], [7.0]]), labels) == 0.5
    assert example.recall_at_1(embeddings, np.array([0, 0, 1, 1])) == 1.0


def test_pca_2d_projects_on_the_leading_components() -> None:
    example = _load_example()
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
