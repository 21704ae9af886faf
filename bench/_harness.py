"""The one bench harness: measuring, environment, compile info, agreement and result writing.

Every suite (``bench/run.py`` "losses", ``image``, ``metric``, ``multitask``,
``gpu``) measures with these functions, so that a number means the same in
every table:

* :func:`measure`: wall time of zero-argument callables that block until their
  result is ready, after warm-up calls, interleaved in shuffled rounds (so that
  load from elsewhere hits every implementation alike); median and min in ms.
* :func:`compile_info`: ahead-of-time compilation of ``jax.jit(fn)``, its
  compile time recorded separately from any timing, XLA's compiled memory
  analysis (temporary, argument and output bytes) and the executable itself,
  so that the timed calls run the very program whose memory is reported.
* :func:`environment`: the machine, the devices and the package versions.
* :func:`write_results`: ``<stem>.json`` (strict JSON: non-finite floats
  become ``null``) and ``<stem>.md``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
MODES = ("forward", "value_and_grad")


# ----------------------------------------------------------------------------- environment


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def package_version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def available_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def environment(packages: Sequence[str] = ("optax",), **extra: Any) -> dict[str, Any]:
    """Machine, JAX device and versions of jax, jaxlib, numpy and ``packages``.

    A package's key is its import name with ``-`` turned into ``_`` (``dm-pix``
    is recorded as ``dm_pix``); a missing package is ``None``.
    """
    device = jax.devices()[0]
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": cpu_count(),
        "jax": jax.__version__,
        "jaxlib": package_version("jaxlib"),
        "numpy": np.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device_kind": device.device_kind,
        "jax_device_count": jax.device_count(),
    }
    for name in packages:
        env[name.replace("-", "_")] = package_version(name)
    env.update(extra)
    return env


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- measurement


def measure(
    calls: dict[str, Callable[[], Any]],
    *,
    warmup: int,
    rounds: int,
    min_rounds: int | None = None,
    budget_s: float = 0.0,
    seed: int = 0,
    rng: np.random.Generator | None = None,
    block: bool = True,
) -> dict[str, dict[str, float | int]]:
    """Median and min wall time in ms of each callable, interleaved in shuffled rounds.

    Each callable must return once its work is done (with ``block=True`` the
    harness also calls ``jax.block_until_ready`` on what it returns; callables
    that run on a CUDA torch device synchronise themselves). Rounds stop after
    ``rounds``, or after ``min_rounds`` once ``budget_s`` seconds of rounds
    have passed. The round order is shuffled by ``rng`` if given, else by a
    ``random.Random(seed)``.
    """
    min_rounds = rounds if min_rounds is None else min(min_rounds, rounds)
    wait = jax.block_until_ready if block else (lambda out: out)
    for fn in calls.values():
        for _ in range(warmup):
            wait(fn())
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    shuffle = random.Random(seed)
    start = time.perf_counter()
    done = 0
    while done < rounds and (done < min_rounds or time.perf_counter() - start < budget_s):
        if rng is not None:
            order = [names[i] for i in rng.permutation(len(names))]
        else:
            order = list(names)
            shuffle.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            wait(calls[name]())
            samples[name].append((time.perf_counter() - t0) * 1e3)
        done += 1
    return {name: {"median": statistics.median(s), "min": min(s), "repeats": len(s)}
            for name, s in samples.items()}


def compile_info(fn: Callable[..., Any], args: Sequence[Any], *,
                 hlo_path: Path | None = None, fingerprint: bool = False,
                 keep: bool = True) -> dict[str, Any]:
    """Compile ``jax.jit(fn)`` ahead of time at ``args`` (arrays or ``ShapeDtypeStruct``).

    Returns ``compile_s`` (lowering plus compilation, wall time), XLA's
    ``temp_bytes``, ``argument_bytes`` and ``output_bytes`` (``None`` where the
    backend has no memory analysis), optionally ``hlo_fingerprint`` (see
    :func:`hlo_fingerprint`), and under ``"compiled"`` the executable (unless
    ``keep=False``); that key is never written to JSON.
    """
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - t0
    info: dict[str, Any] = {"compile_s": seconds, "temp_bytes": None, "argument_bytes": None,
                            "output_bytes": None}
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # some backends do not implement it
        analysis = None
    if analysis is not None:
        for key, attr in (("temp_bytes", "temp_size_in_bytes"),
                          ("argument_bytes", "argument_size_in_bytes"),
                          ("output_bytes", "output_size_in_bytes")):
            value = getattr(analysis, attr, None)
            info[key] = None if value is None else int(value)
    if fingerprint or hlo_path is not None:
        text = compiled.as_text() or ""
        if fingerprint:
            info["hlo_fingerprint"] = hlo_fingerprint(text) if text else None
        if hlo_path is not None:
            hlo_path.parent.mkdir(parents=True, exist_ok=True)
            hlo_path.write_text(text)
    if keep:
        info["compiled"] = compiled
    return info


def public(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` without the executable (what goes into JSON)."""
    return {k: v for k, v in info.items() if k != "compiled"}


_HLO_METADATA = re.compile(r",?\s*metadata=\{[^}]*\}")
_HLO_NAME = re.compile(r"%[\w.\-]+")
_HLO_PARAMETER = re.compile(r"[\w.\-]+: ")


def hlo_fingerprint(text: str) -> str:
    """A hash of an optimized HLO module's computations, blind to names and metadata.

    Two functions with the same fingerprint compiled to the same program: their
    timing ratio is measurement noise by construction.
    """
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith(("%", "ROOT", "ENTRY")) or line == "}"):
            continue
        line = _HLO_METADATA.sub("", line)
        lines.append(_HLO_PARAMETER.sub(": ", _HLO_NAME.sub("%", line)))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- agreement


def rel_diff(a: float, b: float) -> float:
    """``|a - b| / |b|``."""
    return abs(a - b) / max(abs(b), 1e-30)


def grad_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max ``|a - b|`` relative to max ``|b|``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not b.size:
        return 0.0
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / max(scale, 1e-30)


# ----------------------------------------------------------------------------- formatting


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def fmt_x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


# ----------------------------------------------------------------------------- results


def finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_results(out: Path | str, stem: str, report: dict[str, Any], table: str,
                  ) -> tuple[Path, Path]:
    """Writes ``<out>/<stem>.json`` and ``<out>/<stem>.md``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(finite(report), indent=2, allow_nan=False) + "\n")
    md_path.write_text(table)
    return json_path, md_path


def stem(suite: str, *, quick: bool, partial: bool = False) -> str:
    """``<suite>-<backend>[-quick][-partial]``: the name of a suite's result files."""
    name = f"{suite}-{jax.default_backend()}"
    if quick:
        name += "-quick"
    if partial:
        name += "-partial"
    return name
