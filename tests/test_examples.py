"""Smoke test of examples/quickstart.py: it runs end to end with a tiny step count.

The script runs in a subprocess (its own JAX configuration, as a user runs
it) with 3 training steps per loss, which keeps it to roughly 15-30 s on 2
CPU cores (mostly imports and three compilations); the subprocess timeout
fails the test rather than letting it hang.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "quickstart.py"


def _load_quickstart():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("quickstart", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs_and_writes_png(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "3", "--batch-size", "16", "--seed", "1",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    png = tmp_path / "quickstart_losses.png"
    assert png.is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in result.stdout
    assert "balanced accuracy" in result.stdout
    for name in ("cross-entropy", "weighted CE", "focal"):
        assert name in result.stdout
    # one row of recalls per class, three losses each
    rows = [line for line in result.stdout.splitlines() if line[:4].strip().isdigit()]
    assert len(rows) == 10
    for row in rows:
        recalls = [float(v) for v in row.split()[-3:]]
        assert all(0.0 <= r <= 1.0 for r in recalls)


def test_quickstart_data_is_imbalanced_and_weights_balance_it() -> None:
    quickstart = _load_quickstart()
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
