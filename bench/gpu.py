"""The GPU suite (issue 13): jaxloss against optax and PyTorch (CUDA) on one accelerator.

Usage (from the repository root; no network; about 6-8 minutes on one H200)::

    PYTHONPATH=. python3 -m bench --suite gpu --out /tmp/out   # writes gpu.{json,md}
    python -m bench --suite gpu --quick                        # every case, tiny, on any backend

Sections, each with a share of the time budget (``--budget``, default 420 s;
results are rewritten after every case, so a timeout still leaves them):

1. ``bandwidth``: the device's measured copy bandwidth, bytes read + written
   per second of a jitted ``x + 1`` and of torch ``clone()`` on a 2 GiB array.
2. ``elementwise``: MSE, Huber, BCE from logits, cross-entropy (integer
   labels) and softmax focal at 2^28 elements (CE and focal as
   ``(262144, 1024)`` logits): forward and value_and_grad time of jaxloss,
   optax and torch, each as a percentage of that bandwidth for the bytes that
   must be read (inputs) and written (the gradient).
3. ``pairs``: NT-Xent (InfoNCE, labels pairing rows 2k and 2k+1) and SigLIP
   value_and_grad at N = 16k, 64k, 256k, d = 256, bfloat16 and float32:
   jaxloss chunked (``block_size``), dense (``block_size=None``) and optax's
   ``ntxent`` where their predicted memory fits; time, XLA's temp memory of
   the function and the process's peak device memory.
4. ``arcface``: 1,000,000 classes, N = 4096, d = 512, value_and_grad with
   respect to embeddings and kernel, chunked and dense.
5. ``dense``: SSIM, Lovász-softmax, Dice+CE against the same formulas written
   in torch on the same GPU, and the distance transform against
   ``scipy.ndimage.distance_transform_edt`` on the host.
6. ``scale``: the largest global batch at which chunked bf16 InfoNCE and
   SigLIP value_and_grad run (2^18, 2^19, 2^20 = 1,048,576, 2^21), one timed
   step each, stopping at the first failure or when the predicted time (N²
   scaling from the last size) exceeds what is left of the budget.

Every case checks that its implementations agree (value, and gradient where
they are comparable) before it is timed; a disagreement is recorded, not
fatal. Compile time is measured separately (ahead-of-time ``lower().compile()``)
and never enters a timing. Every case runs under ``try``: an error (say, out
of memory) is recorded and the suite goes on.

Without a GPU the suite refuses to run unless ``--quick`` (or ``--allow-cpu``).
torch, scipy and optax are optional: what is missing is recorded as n/a.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

import jaxloss
from bench import _harness as H

SCHEMA_VERSION = 1
GIB = 2**30
MODES = H.MODES

FULL: dict[str, Any] = {
    "budget_s": 420.0,
    # cumulative share of the budget at which each section must have finished
    "section_ends": {"bandwidth": 0.05, "elementwise": 0.22, "pairs": 0.52, "arcface": 0.60,
                     "dense": 0.72, "scale": 1.0},
    "rounds": 10, "warmup": 2,
    "bandwidth_elements": 2**29,                 # 2 GiB of float32
    "elementwise_elements": 2**28, "classes": 1024,
    "pair_sizes": (2**14, 2**16, 2**18), "pair_dim": 256, "pair_block": 2048,
    "pair_dtypes": ("bfloat16", "float32"),
    "memory_limit_bytes": 100 * GIB,             # predicted need above this: not run
    "arcface": {"batch": 4096, "dim": 512, "classes": 1_000_000, "block": 65536},
    "ssim": (16, 512, 512, 3), "lovasz": (4, 512, 512, 21), "dice_ce": (8, 512, 512, 21),
    "edt_2d": (8, 512, 512), "edt_3d": (128, 128, 128),
    "scale_sizes": (2**18, 2**19, 2**20, 2**21),
}
QUICK: dict[str, Any] = {
    "budget_s": 600.0,
    "section_ends": FULL["section_ends"],
    "rounds": 2, "warmup": 1,
    "bandwidth_elements": 2**12,
    "elementwise_elements": 2**12, "classes": 16,
    "pair_sizes": (64,), "pair_dim": 16, "pair_block": 32,
    "pair_dtypes": ("float32",),                 # bfloat16 runs in the scale section
    "memory_limit_bytes": 100 * GIB,
    "arcface": {"batch": 16, "dim": 8, "classes": 1000, "block": 256},
    "ssim": (2, 24, 24, 3), "lovasz": (1, 8, 8, 5), "dice_ce": (2, 8, 8, 5),
    "edt_2d": (2, 16, 16), "edt_3d": (8, 8, 8),
    "scale_sizes": (128,),
}

TEMPERATURE = 0.1
GOAL_BATCH = 1_000_000   # the scale section's goal: the first size at or above it
# agreement tolerances (relative value, gradient max-abs over max-abs), by dtype
TOL = {"float32": (2e-3, 2e-2), "bfloat16": (3e-2, 1e-1)}
TOL_EXACT = (1e-4, 1e-3)   # float32 elementwise and image losses


# ----------------------------------------------------------------------------- torch


class Torch:
    """torch on the same accelerator (CUDA) if there is one, else the CPU; or absent."""

    def __init__(self) -> None:
        try:
            import torch
        except ImportError:
            self.torch = None
            self.device = None
            return
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def ok(self) -> bool:
        return self.torch is not None

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def from_jax(self, x: jax.Array, dtype: Any = None) -> Any:
        """A torch copy of ``x`` on torch's device (via DLPack, else through the host)."""
        torch = self.torch
        try:
            t = torch.from_dlpack(x).to(self.device).clone()
        except Exception:
            t = torch.from_numpy(np.array(x)).to(self.device)
        if dtype is not None:
            t = t.to(dtype)
        self.sync()
        return t

    def to_jax(self, t: Any) -> jax.Array:
        t = t.detach().contiguous()
        self.sync()
        try:
            return jnp.array(jnp.from_dlpack(t))
        except Exception:
            return jnp.asarray(t.cpu().numpy())

    def empty_cache(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


def torch_focal(p: Any, t: Any) -> Any:
    """Softmax focal loss (gamma 2, no alpha), mean over positions of -(1-p_t)^2 log p_t."""
    import torch

    logp = torch.log_softmax(p, dim=-1).gather(-1, t[:, None]).squeeze(-1)
    return (-(1 - logp.exp()) ** 2 * logp).mean()


def _gaussian(window: int, sigma: float) -> np.ndarray:
    offsets = np.arange(window) - window // 2
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def torch_ssim_loss(x: Any, y: Any, window: int = 11, sigma: float = 1.5) -> Any:
    """1 - mean SSIM (NCHW), kornia's formula: a 2-D Gaussian window as a grouped conv2d
    on the five moments, "valid" padding, C1 = 0.01², C2 = 0.03² (max_val 1)."""
    import torch
    from torch.nn import functional

    channels = x.shape[1]
    g = torch.as_tensor(_gaussian(window, sigma), device=x.device)
    kernel = torch.outer(g, g).expand(5 * channels, 1, window, window).contiguous()
    z = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    mx, my, exx, eyy, exy = functional.conv2d(z, kernel, groups=5 * channels).chunk(5, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mx * my + c1) * (2 * (exy - mx * my) + c2)
            / ((mx * mx + my * my + c1) * (exx - mx * mx + eyy - my * my + c2)))
    return 1 - ssim.mean()


def torch_lovasz_softmax(logits: Any, labels: Any) -> Any:
    """Berman et al.'s reference Lovász-softmax (classes="present", per_image=False),
    its per-class sort done for all classes at once along dim 0. Logits ``(..., C)``."""
    import torch
    from torch.nn import functional

    c = logits.shape[-1]
    probas = torch.softmax(logits.reshape(-1, c), dim=-1)
    fg = functional.one_hot(labels.reshape(-1), c).to(probas.dtype)
    errors = (fg - probas).abs()
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    fg_sorted = torch.gather(fg, 0, perm)
    gts = fg_sorted.sum(0)
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)
    losses = (errors_sorted * grad).sum(0)
    return losses[gts > 0].mean()


def torch_dice_ce(logits: Any, labels: Any, smooth: float = 1e-5) -> Any:
    """MONAI's ``DiceCELoss(to_onehot_y=True, softmax=True)`` formula, channels-last logits."""
    import torch
    from torch.nn import functional

    c = logits.shape[-1]
    p = torch.softmax(logits, dim=-1)
    t = functional.one_hot(labels, c).to(p.dtype)
    dims = tuple(range(1, logits.ndim - 1))
    intersection = (p * t).sum(dims)
    denominator = p.sum(dims) + t.sum(dims)
    dice = 1 - (2 * intersection + smooth) / (denominator + smooth)
    ce = functional.cross_entropy(logits.reshape(-1, c), labels.reshape(-1))
    return dice.mean() + ce


# ----------------------------------------------------------------------------- helpers


def _standard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` traced with standard dtype promotion and rank promotion allowed (optax code
    mixes bool, int and float arrays; the test suite turns strict promotion on)."""
    def wrapped(*args: Any) -> Any:
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            return fn(*args)
    return wrapped


def device_memory() -> dict[str, int | None]:
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:
        stats = {}
    return {k: (None if stats.get(k) is None else int(stats[k]))
            for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")}


def device_info(torch: Torch) -> dict[str, Any]:
    info: dict[str, Any] = {"jax_devices": [str(d) for d in jax.devices()]}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.memory",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=15, check=False)
        info["nvidia_smi"] = (out.stdout.strip() if out.returncode == 0
                              else f"n/a (exit {out.returncode}: {out.stderr.strip()[:200]})")
    except Exception as error:
        info["nvidia_smi"] = f"n/a ({type(error).__name__})"
    if torch.ok and torch.device == "cuda":
        t = torch.torch
        props = t.cuda.get_device_properties(0)
        info.update({"torch_device_name": t.cuda.get_device_name(0),
                     "torch_cuda": t.version.cuda,
                     "torch_device_memory_bytes": int(props.total_memory)})
        with contextlib.suppress(Exception):  # not in every torch
            info["cuda_driver_version"] = t.cuda.driver_version()
    info["memory"] = device_memory()
    return info


def _wait_jax(fn: Callable[[], Any]) -> Callable[[], None]:
    def call() -> None:
        jax.block_until_ready(fn())
    return call


def _wait_torch(torch: Torch, fn: Callable[[], Any]) -> Callable[[], None]:
    def call() -> None:
        fn()
        torch.sync()
    return call


@jax.jit
def _max_abs_diff(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    a32, b32 = a.astype(jnp.float32), b.astype(jnp.float32)
    return jnp.max(jnp.abs(a32 - b32)), jnp.max(jnp.abs(b32))


def grad_rel(a: jax.Array, b: jax.Array) -> float:
    """max |a - b| / max |b|, computed on the device."""
    diff, scale = _max_abs_diff(a, b)
    return float(diff) / max(float(scale), 1e-30)


class Clock:
    """The suite's time budget and each section's deadline."""

    def __init__(self, budget_s: float, ends: dict[str, float]) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.ends = ends

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self, section: str | None = None) -> float:
        share = 1.0 if section is None else self.ends[section]
        return self.budget_s * share - self.elapsed()


# ----------------------------------------------------------------------------- the comparison


def compare(
    *,
    jax_impls: dict[str, tuple[Callable[..., Any], tuple[Any, ...], Any]],
    torch_impls: dict[str, tuple[Callable[..., Any], list[Any], Callable[[Any], Any]]],
    torch: Torch,
    rounds: int,
    warmup: int,
    tol: tuple[float, float],
    modes: tuple[str, ...] = MODES,
    seed: int = 0,
) -> dict[str, Any]:
    """Compiles, checks agreement, then times every implementation of one case.

    ``jax_impls``: name -> (loss, args, argnums); the gradient compared is the
    first of ``argnums``. ``torch_impls``: name -> (loss, tensors, to_jax_layout)
    with the gradient taken with respect to ``tensors[0]``. The first jax
    implementation is the reference of the agreement.
    """
    record: dict[str, Any] = {"compile": {}, "temp_bytes": {}, "agreement": {}}
    calls: dict[str, Callable[[], None]] = {}
    outputs: dict[str, tuple[float, Any]] = {}
    for name, (fn, args, argnums) in jax_impls.items():
        record["compile"][name], record["temp_bytes"][name] = {}, {}
        for mode in modes:
            f = fn if mode == "forward" else jax.value_and_grad(fn, argnums=argnums)
            info = H.compile_info(f, args)
            record["compile"][name][mode] = H.public(info)
            record["temp_bytes"][name][mode] = info["temp_bytes"]
            compiled = info["compiled"]
            calls[f"{name}/{mode}"] = _wait_jax(lambda c=compiled, a=args: c(*a))
            if mode == "value_and_grad":
                value, grad = compiled(*args)
                grad = grad[0] if isinstance(argnums, tuple) else grad
                outputs[name] = (float(value), grad)
            elif "value_and_grad" not in modes:
                outputs[name] = (float(compiled(*args)), None)
    if torch.ok:
        t = torch.torch
        for name, (fn, tensors, layout) in torch_impls.items():
            leaf = tensors[0].detach().clone().requires_grad_(True)
            rest = tensors[1:]

            def forward(fn: Callable[..., Any] = fn, tensors: list[Any] = tensors) -> Any:
                with t.no_grad():
                    return fn(*tensors)

            def vag(fn: Callable[..., Any] = fn, leaf: Any = leaf, rest: list[Any] = rest) -> Any:
                loss = fn(leaf, *rest)
                (grad,) = t.autograd.grad(loss, leaf)
                return loss, grad

            for mode, f in (("forward", forward), ("value_and_grad", vag)):
                if mode in modes:
                    calls[f"{name}/{mode}"] = _wait_torch(torch, f)
            if "value_and_grad" in modes:
                loss, grad = vag()
                outputs[name] = (float(loss.detach()), torch.to_jax(layout(grad)))
                del grad
            else:
                outputs[name] = (float(forward()), None)
    reference = next(iter(jax_impls))
    ref_value, ref_grad = outputs[reference]
    agree = True
    values = {name: value for name, (value, _) in outputs.items()}
    record["agreement"]["values"] = values
    record["agreement"]["reference"] = reference
    record["agreement"]["tolerance"] = {"value_rel": tol[0], "grad_rel": tol[1]}
    for name, (value, grad) in outputs.items():
        if name == reference:
            continue
        entry: dict[str, Any] = {"value_rel_diff": H.rel_diff(value, ref_value)}
        ok = math.isfinite(value) and entry["value_rel_diff"] <= tol[0]
        if grad is not None and ref_grad is not None:
            entry["grad_rel_diff"] = grad_rel(grad, ref_grad)
            ok = ok and entry["grad_rel_diff"] <= tol[1]
        record["agreement"][name] = entry
        agree = agree and ok
    record["agreement"]["agree"] = bool(agree and math.isfinite(ref_value))
    del outputs
    timings = H.measure(calls, warmup=warmup, rounds=rounds, seed=seed, block=False)
    names = list(jax_impls) + [n for n in torch_impls if torch.ok]
    record["timings_ms"] = {name: {mode: timings[f"{name}/{mode}"] for mode in modes}
                            for name in names}
    record["status"] = "ok" if record["agreement"]["agree"] else "warning: disagree"
    return record


# ----------------------------------------------------------------------------- sections


def bandwidth_section(cfg: dict[str, Any], torch: Torch) -> dict[str, Any]:
    n = cfg["bandwidth_elements"]
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    nbytes = 2 * x.nbytes  # read once, written once
    info = H.compile_info(lambda a: a + jnp.ones((), a.dtype), (x,))
    compiled = info["compiled"]
    ok = bool(jnp.all(compiled(x) == x + 1))
    calls: dict[str, Callable[[], None]] = {"jax x+1": _wait_jax(lambda: compiled(x))}
    if torch.ok:
        tx = torch.from_jax(x)
        calls["torch clone"] = _wait_torch(torch, lambda: tx.clone())
        ok = ok and bool((tx.clone() == tx).all())
    timings = H.measure(calls, warmup=cfg["warmup"], rounds=max(cfg["rounds"], 5), block=False)
    gbs = {name: nbytes / (t["median"] / 1e3) / 1e9 for name, t in timings.items()}
    best = max(gbs.values())
    return {"elements": n, "bytes_moved": nbytes, "timings_ms": timings, "gb_per_s": gbs,
            "bandwidth_gb_per_s": best, "reference": max(gbs, key=gbs.get),
            "values_checked": ok, "compile_s": info["compile_s"],
            "definition": "(bytes read + bytes written) / median time; the better of the two"}


def _elementwise_inputs(kind: str, cfg: dict[str, Any], key: jax.Array,
                        ) -> tuple[jax.Array, jax.Array]:
    n = cfg["elementwise_elements"]
    k1, k2 = jax.random.split(key)
    if kind in ("mse", "huber"):
        return (jax.random.normal(k1, (n,), jnp.float32),
                jax.random.normal(k2, (n,), jnp.float32))
    if kind == "bce":
        return (2 * jax.random.normal(k1, (n,), jnp.float32),
                jax.random.bernoulli(k2, 0.5, (n,)).astype(jnp.float32))
    c = cfg["classes"]
    rows = n // c
    return (3 * jax.random.normal(k1, (rows, c), jnp.float32),
            jax.random.randint(k2, (rows,), 0, c, jnp.int32))


def elementwise_cases() -> list[dict[str, Any]]:
    from bench import cases

    return [
        {"case": "mse", "title": "MSE", "jaxloss": jaxloss.mse_loss,
         "optax": cases._optax_mse, "torch": "mse"},
        {"case": "huber", "title": "Huber (delta=1)",
         "jaxloss": lambda p, t: jaxloss.huber_loss(p, t, delta=1.0),
         "optax": cases._optax_huber, "torch": "huber"},
        {"case": "bce", "title": "BCE from logits", "jaxloss": jaxloss.binary_cross_entropy_loss,
         "optax": cases._optax_bce, "torch": "bce"},
        {"case": "cross_entropy", "title": "Cross-entropy (integer labels)",
         "jaxloss": jaxloss.cross_entropy_loss, "optax": cases._optax_ce, "torch": "ce"},
        {"case": "focal", "title": "Focal (softmax, gamma=2)",
         "jaxloss": lambda p, t: jaxloss.focal_loss(p, t, gamma=2.0), "optax": None,
         "torch": "focal"},
    ]


def _torch_elementwise(kind: str) -> Callable[..., Any]:
    from torch.nn import functional

    return {"mse": functional.mse_loss,
            "huber": lambda p, t: functional.huber_loss(p, t, delta=1.0),
            "bce": functional.binary_cross_entropy_with_logits,
            "ce": functional.cross_entropy, "focal": torch_focal}[kind]


def elementwise_case(spec: dict[str, Any], cfg: dict[str, Any], torch: Torch,
                     bandwidth: float | None) -> dict[str, Any]:
    p, t = _elementwise_inputs(spec["case"], cfg, jax.random.key(1))
    jax_impls: dict[str, Any] = {"jaxloss": (spec["jaxloss"], (p, t), 0)}
    if spec["optax"] is not None:
        jax_impls["optax"] = (_standard(spec["optax"]), (p, t), 0)
    torch_impls: dict[str, Any] = {}
    if torch.ok:
        tp = torch.from_jax(p)
        tt = torch.from_jax(t, torch.torch.int64 if t.dtype == jnp.int32 else None)
        torch_impls["torch"] = (_torch_elementwise(spec["torch"]), [tp, tt], lambda g: g)
    record = compare(jax_impls=jax_impls, torch_impls=torch_impls, torch=torch,
                     rounds=cfg["rounds"], warmup=cfg["warmup"], tol=TOL_EXACT)
    read = p.nbytes + t.nbytes
    written = p.nbytes
    record.update({"case": spec["case"], "title": spec["title"], "shape": list(p.shape),
                   "elements": int(p.size), "bytes": {"forward": read,
                                                      "value_and_grad": read + written}})
    if spec["optax"] is None:
        record["notes"] = {"optax": "n/a: optax has only sigmoid_focal_loss"}
    if bandwidth:
        record["percent_of_bandwidth"] = {
            name: {mode: 100 * record["bytes"][mode] / (t["median"] / 1e3) / (bandwidth * 1e9)
                   for mode, t in modes.items()}
            for name, modes in record["timings_ms"].items()}
    torch.empty_cache()
    return record


def _pair_inputs(loss: str, n: int, d: int, dtype: str) -> tuple[jax.Array, jax.Array]:
    k1, k2 = jax.random.split(jax.random.key(n))
    x = jax.random.normal(k1, (n, d), jnp.float32)
    if loss == "ntxent":
        return x.astype(dtype), jnp.arange(n, dtype=jnp.int32) // 2
    y = x + 0.5 * jax.random.normal(k2, (n, d), jnp.float32)  # paired, correlated
    return x.astype(dtype), y.astype(dtype)


def pair_impls(loss: str, block: int) -> dict[str, Callable[..., Any]]:
    if loss == "ntxent":
        def chunked(x: jax.Array, y: jax.Array) -> jax.Array:
            return jaxloss.ntxent_loss(x, y, temperature=TEMPERATURE, block_size=block)

        def dense(x: jax.Array, y: jax.Array) -> jax.Array:
            return jaxloss.ntxent_loss(x, y, temperature=TEMPERATURE)

        def optax_ntxent(x: jax.Array, y: jax.Array) -> jax.Array:
            import optax

            return optax.losses.ntxent(x, y, temperature=TEMPERATURE)

        return {"chunked": chunked, "dense": dense, "optax": _standard(optax_ntxent)}

    def chunked_s(x: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.siglip_loss(x, y, block_size=block)

    def dense_s(x: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.siglip_loss(x, y)

    return {"chunked": chunked_s, "dense": dense_s}


def _rows(n: int) -> int:
    rows = max(1, min(n, 2**28 // n))
    while n % rows:
        rows //= 2
    return rows


def reference_value(loss: str, x: jax.Array, y: jax.Array) -> float:
    """The loss from its formula, row block by row block (float32 accumulation): an
    independent check of the chunked path where the dense one does not fit."""
    return float(_reference(loss, x, y))


@functools.partial(jax.jit, static_argnums=0)
def _reference(loss: str, x: jax.Array, y: jax.Array) -> jax.Array:
    # the inputs are arguments, never closed-over constants (XLA would constant-fold the
    # products at compile time)
    n = x.shape[0]
    rows = _rows(n)

    def normalise(a: jax.Array) -> jax.Array:
        a = a.astype(jnp.float32)
        return (a / jnp.linalg.norm(a, axis=-1, keepdims=True)).astype(x.dtype)

    # float32 inputs: full float32 products (no TF32); bfloat16: bf16 products, f32 sums
    precision = jax.lax.Precision.HIGHEST if x.dtype == jnp.float32 else None
    xn = normalise(x)
    keys = xn if loss == "ntxent" else normalise(y)

    def block(i: jax.Array) -> jax.Array:
        q = jax.lax.dynamic_slice_in_dim(xn, i * rows, rows)
        s = jnp.dot(q, keys.T, preferred_element_type=jnp.float32, precision=precision)
        index = i * rows + jnp.arange(rows)
        if loss == "ntxent":
            s = s / TEMPERATURE
            self_mask = jnp.arange(n)[None, :] == index[:, None]
            lse = jax.scipy.special.logsumexp(jnp.where(self_mask, -jnp.inf, s), axis=1)
            positive = jnp.take_along_axis(s, (index ^ 1)[:, None], axis=1)[:, 0]
            return jnp.sum(lse - positive)
        z = jnp.where(jnp.arange(n)[None, :] == index[:, None], 1.0, -1.0)
        return jnp.sum(jax.nn.softplus(-z * (10.0 * s - 10.0)))

    return jnp.sum(jax.lax.map(block, jnp.arange(n // rows))) / n


def _fits(need: int | None, cfg: dict[str, Any]) -> bool:
    limit = cfg["memory_limit_bytes"]
    bytes_limit = device_memory()["bytes_limit"]
    if bytes_limit:
        limit = min(limit, int(0.9 * bytes_limit))
    return need is None or need <= limit


def pair_case(loss: str, n: int, dtype: str, cfg: dict[str, Any], *, rounds: int,
              warmup: int) -> dict[str, Any]:
    d, block = cfg["pair_dim"], cfg["pair_block"]
    x, y = _pair_inputs(loss, n, d, dtype)
    argnums: Any = 0 if loss == "ntxent" else (0, 1)
    itemsize = jnp.dtype(dtype).itemsize
    # predicted need of the value_and_grad before compiling (compiling a program that does
    # not fit can itself fail on a GPU: the autotuner allocates its operands)
    predicted = {"chunked": 8 * n * block * 4 + 8 * n * d * 4,
                 "dense": 4 * n * n * 4 + 8 * n * d * 4,
                 "optax": 2 * n * n * d * max(itemsize, 4)}
    record: dict[str, Any] = {"loss": loss, "n": n, "d": d, "dtype": dtype,
                              "block_size": block, "predicted_bytes": predicted, "impls": {},
                              "not_run": {}}
    impls = pair_impls(loss, block)
    ran: dict[str, tuple[float, Any]] = {}
    calls: dict[str, Callable[[], None]] = {}
    ref = reference_value(loss, x, y)
    record["reference_value"] = ref
    for name, fn in impls.items():
        if not _fits(predicted[name], cfg):
            record["not_run"][name] = (f"predicted {H.fmt_bytes(predicted[name])} exceeds "
                                       f"the {H.fmt_bytes(cfg['memory_limit_bytes'])} limit")
            continue
        entry: dict[str, Any] = {}
        record["impls"][name] = entry
        try:
            info = H.compile_info(jax.value_and_grad(fn, argnums=argnums), (x, y))
            entry.update(H.public(info))
            need = sum(info[k] or 0 for k in ("temp_bytes", "argument_bytes", "output_bytes"))
            entry["function_bytes"] = need
            if not _fits(need, cfg):
                record["not_run"][name] = f"XLA needs {H.fmt_bytes(need)}: over the limit"
                continue
            compiled = info["compiled"]
            value, grad = compiled(x, y)
            grad = grad[0] if isinstance(argnums, tuple) else grad
            jax.block_until_ready(grad)
            entry["value"] = float(value)
            entry["peak_bytes_after"] = device_memory()["peak_bytes_in_use"]
            ran[name] = (float(value), grad)
            calls[name] = _wait_jax(lambda c=compiled: c(x, y))
        except Exception as error:  # out of memory, most likely
            entry["error"] = f"{type(error).__name__}: {str(error)[:400]}"
    tol = TOL[dtype]
    agreement: dict[str, Any] = {"reference": "row-blocked formula (float32 accumulation)",
                                 "tolerance": {"value_rel": tol[0], "grad_rel": tol[1]}}
    agree = True
    for name, (value, _) in ran.items():
        diff = H.rel_diff(value, ref)
        agreement[name] = {"value_rel_diff": diff}
        agree = agree and math.isfinite(value) and diff <= tol[0]
    if "chunked" in ran:
        for name in ("dense", "optax"):
            if name in ran:
                g = grad_rel(ran["chunked"][1], ran[name][1])
                agreement[name]["grad_rel_diff_chunked_vs"] = g
                agree = agree and g <= tol[1]
    agreement["agree"] = bool(agree)
    record["agreement"] = agreement
    del ran
    if calls:
        timings = H.measure(calls, warmup=warmup, rounds=rounds, block=False)
        for name, t in timings.items():
            record["impls"][name]["value_and_grad_ms"] = t
    record["peak_bytes_in_use"] = device_memory()["peak_bytes_in_use"]
    record["status"] = "ok" if agree else "warning: disagree"
    return record


def arcface_case(cfg: dict[str, Any], *, rounds: int, warmup: int) -> dict[str, Any]:
    a = cfg["arcface"]
    n, d, c, block = a["batch"], a["dim"], a["classes"], a["block"]
    k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
    x = jax.random.normal(k1, (n, d), jnp.float32)
    labels = jax.random.randint(k2, (n,), 0, c, jnp.int32)
    kernel = jax.random.normal(k3, (d, c), jnp.float32)
    record: dict[str, Any] = {"batch": n, "dim": d, "classes": c, "block_size": block,
                              "value_and_grad_wrt": ["embeddings", "kernel"], "impls": {},
                              "not_run": {}}
    predicted = {"chunked": 6 * n * block * 4 + 3 * d * c * 4,
                 "dense": 4 * n * c * 4 + 3 * d * c * 4}
    record["predicted_bytes"] = predicted
    ran: dict[str, tuple[float, Any]] = {}
    calls: dict[str, Callable[[], None]] = {}
    for name, bs in (("chunked", block), ("dense", None)):
        if not _fits(predicted[name], cfg):
            record["not_run"][name] = f"predicted {H.fmt_bytes(predicted[name])} over the limit"
            continue
        entry: dict[str, Any] = {}
        record["impls"][name] = entry

        def loss(e: jax.Array, y: jax.Array, k: jax.Array, bs: int | None = bs) -> jax.Array:
            return jaxloss.arcface_loss(e, y, k, block_size=bs)

        try:
            info = H.compile_info(jax.value_and_grad(loss, argnums=(0, 2)), (x, labels, kernel))
            entry.update(H.public(info))
            need = sum(info[k] or 0 for k in ("temp_bytes", "argument_bytes", "output_bytes"))
            entry["function_bytes"] = need
            if not _fits(need, cfg):
                record["not_run"][name] = f"XLA needs {H.fmt_bytes(need)}: over the limit"
                continue
            compiled = info["compiled"]
            value, (ge, gk) = compiled(x, labels, kernel)
            jax.block_until_ready(gk)
            entry["value"] = float(value)
            entry["peak_bytes_after"] = device_memory()["peak_bytes_in_use"]
            ran[name] = (float(value), ge)
            calls[name] = _wait_jax(lambda c=compiled: c(x, labels, kernel))
        except Exception as error:
            entry["error"] = f"{type(error).__name__}: {str(error)[:400]}"
    agreement: dict[str, Any] = {"tolerance": {"value_rel": 1e-3, "grad_rel": 2e-2}}
    if "chunked" in ran and "dense" in ran:
        agreement["value_rel_diff"] = H.rel_diff(ran["chunked"][0], ran["dense"][0])
        agreement["grad_rel_diff"] = grad_rel(ran["chunked"][1], ran["dense"][1])
        agreement["agree"] = bool(agreement["value_rel_diff"] <= 1e-3
                                  and agreement["grad_rel_diff"] <= 2e-2)
    else:
        agreement["agree"] = bool(ran) and all(math.isfinite(v) for v, _ in ran.values())
        agreement["note"] = "only one path ran: value checked to be finite"
    record["agreement"] = agreement
    del ran
    if calls:
        timings = H.measure(calls, warmup=warmup, rounds=rounds, block=False)
        for name, t in timings.items():
            record["impls"][name]["value_and_grad_ms"] = t
    record["peak_bytes_in_use"] = device_memory()["peak_bytes_in_use"]
    record["status"] = "ok" if agreement["agree"] else "warning: disagree"
    return record


def _nchw(torch: Torch, x: jax.Array) -> Any:
    return torch.from_jax(x).permute(0, 3, 1, 2).contiguous()


def dense_cases(cfg: dict[str, Any], torch: Torch) -> list[tuple[str, Callable[[], dict]]]:
    """(name, thunk) of the image and segmentation cases."""
    rounds, warmup = cfg["rounds"], cfg["warmup"]

    def ssim() -> dict[str, Any]:
        shape = cfg["ssim"]
        k1, k2 = jax.random.split(jax.random.key(3))
        x = jax.random.uniform(k1, shape, jnp.float32)
        y = jnp.clip(x + 0.1 * jax.random.normal(k2, shape, jnp.float32), 0.0, 1.0)
        torch_impls = {}
        if torch.ok:
            torch_impls["torch"] = (torch_ssim_loss, [_nchw(torch, x), _nchw(torch, y)],
                                    lambda g: g.permute(0, 2, 3, 1))
        rec = compare(jax_impls={"jaxloss": (lambda a, b: jaxloss.ssim_loss(a, b), (x, y), 0)},
                      torch_impls=torch_impls, torch=torch, rounds=rounds, warmup=warmup,
                      tol=TOL_EXACT)
        rec.update({"title": "SSIM (11x11 Gaussian, sigma 1.5, valid)", "shape": list(shape),
                    "torch_formula": "kornia's: 2-D Gaussian window, grouped conv2d (NCHW)"})
        return rec

    def segmentation(kind: str) -> dict[str, Any]:
        shape = cfg[kind]
        k1, k2 = jax.random.split(jax.random.key(4))
        logits = 2 * jax.random.normal(k1, shape, jnp.float32)
        labels = jax.random.randint(k2, shape[:-1], 0, shape[-1], jnp.int32)
        if kind == "lovasz":
            fn, tfn = jaxloss.lovasz_softmax_loss, torch_lovasz_softmax
            title, formula = ("Lovász-softmax (classes present)",
                              "Berman's reference, the per-class sort batched over classes")
        else:
            fn, tfn = jaxloss.dice_ce_loss, torch_dice_ce
            title, formula = "Dice + CE (softmax)", "MONAI DiceCELoss(to_onehot_y, softmax)"
        torch_impls = {}
        if torch.ok:
            torch_impls["torch"] = (tfn, [torch.from_jax(logits),
                                          torch.from_jax(labels, torch.torch.int64)],
                                    lambda g: g)
        rec = compare(jax_impls={"jaxloss": (fn, (logits, labels), 0)},
                      torch_impls=torch_impls, torch=torch, rounds=rounds, warmup=warmup,
                      tol=(1e-4, 1e-2) if kind == "lovasz" else TOL_EXACT)
        rec.update({"title": title, "shape": list(shape), "torch_formula": formula})
        return rec

    def edt(kind: str) -> dict[str, Any]:
        shape = cfg[kind]
        mask = jax.random.uniform(jax.random.key(5), shape) > 0.002
        if kind == "edt_2d":
            mask = mask.at[:, 0, 0].set(False)
            axes: tuple[int, ...] | None = (1, 2)
        else:
            mask = mask.at[0, 0, 0].set(False)
            axes = None
        fn = jax.jit(lambda m: jaxloss.distance_transform(m, spatial_axes=axes))
        info = H.compile_info(lambda m: jaxloss.distance_transform(m, spatial_axes=axes), (mask,))
        compiled = info["compiled"]
        del fn
        mask_np = np.asarray(mask)
        calls: dict[str, Callable[[], None]] = {"jaxloss": _wait_jax(lambda: compiled(mask))}
        rec: dict[str, Any] = {"title": f"Distance transform {'x'.join(map(str, shape))}",
                               "shape": list(shape), "compile": {"jaxloss": H.public(info)},
                               "modes": ["forward"]}
        try:
            from scipy import ndimage
        except ImportError:
            ndimage = None
        ours = np.asarray(compiled(mask))
        if ndimage is not None:
            def scipy_edt() -> np.ndarray:
                if axes is None:
                    return ndimage.distance_transform_edt(mask_np)
                return np.stack([ndimage.distance_transform_edt(m) for m in mask_np])

            theirs = scipy_edt()
            diff = float(np.max(np.abs(ours - theirs)))
            rec["agreement"] = {"reference": "scipy", "max_abs_diff": diff,
                                "agree": bool(diff <= 1e-3 * max(1.0, float(theirs.max())))}
            calls["scipy (host)"] = scipy_edt
        else:
            rec["agreement"] = {"agree": bool(np.all(np.isfinite(ours))),
                                "note": "scipy not installed"}
        timings = H.measure(calls, warmup=1, rounds=max(2, rounds // 2), block=False)
        rec["timings_ms"] = {name: {"forward": t} for name, t in timings.items()}
        rec["status"] = "ok" if rec["agreement"]["agree"] else "warning: disagree"
        return rec

    return [("ssim", ssim), ("lovasz", lambda: segmentation("lovasz")),
            ("dice_ce", lambda: segmentation("dice_ce")), ("edt_2d", lambda: edt("edt_2d")),
            ("edt_3d", lambda: edt("edt_3d"))]


def scale_step(loss: str, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """One compiled value_and_grad step of the chunked bf16 loss at batch ``n``, timed once."""
    d, block = cfg["pair_dim"], cfg["pair_block"]
    x, y = _pair_inputs(loss, n, d, "bfloat16")
    argnums: Any = 0 if loss == "ntxent" else (0, 1)
    fn = pair_impls(loss, block)["chunked"]
    info = H.compile_info(jax.value_and_grad(fn, argnums=argnums), (x, y))
    compiled = info["compiled"]
    t0 = time.perf_counter()
    value, grad = compiled(x, y)
    jax.block_until_ready(grad)
    seconds = time.perf_counter() - t0
    rec = {"loss": loss, "n": n, "d": d, "dtype": "bfloat16", "block_size": block,
           "compile": H.public(info), "step_s": seconds, "value": float(value),
           "peak_bytes_in_use": device_memory()["peak_bytes_in_use"],
           "flop_estimate": 8 * n * n * d}
    del grad
    t0 = time.perf_counter()
    ref = reference_value(loss, x, y)
    diff = H.rel_diff(float(value), ref)
    rec["agreement"] = {"reference": "row-blocked formula (float32 accumulation)",
                        "reference_value": ref, "value_rel_diff": diff,
                        "agree": bool(math.isfinite(float(value)) and diff <= TOL["bfloat16"][0]),
                        "reference_s": time.perf_counter() - t0}
    rec["status"] = "ok" if rec["agreement"]["agree"] else "warning: disagree"
    return rec


# ----------------------------------------------------------------------------- report


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}%"


def markdown(report: dict[str, Any]) -> str:
    env, dev = report["environment"], report["device"]
    s = report["sections"]
    lines = [
        f"# GPU suite{' (quick: not a measurement)' if report['quick'] else ''}",
        "",
        f"Device: {env['jax_backend']} {env['jax_device_kind']}; "
        f"nvidia-smi: {dev.get('nvidia_smi', 'n/a')}; torch device {report['torch_device']} "
        f"({dev.get('torch_device_name', 'n/a')}, CUDA {dev.get('torch_cuda', 'n/a')}). "
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, optax {env['optax']}, torch {env['torch']}, "
        f"scipy {env['scipy']}. {report['created']}; {report.get('total_seconds', 0):.0f} s "
        f"of a {report['settings']['budget_s']:.0f} s budget"
        f"{'' if report.get('complete') else ' (partial: still running or stopped)'}.",
        "",
        "Times are medians in ms (wall time, `block_until_ready` / `torch.cuda.synchronize`), "
        "compile time excluded (ahead-of-time compilation, reported separately).",
    ]
    bw = s.get("bandwidth")
    if bw:
        lines += ["", "## Copy bandwidth", ""]
        if "error" in bw:
            lines.append(f"error: {bw['error']}")
        else:
            lines.append(", ".join(f"{k}: {v:.0f} GB/s" for k, v in bw["gb_per_s"].items())
                         + f" ({H.fmt_bytes(bw['bytes_moved'])} read + written per call); "
                         f"reference: **{bw['bandwidth_gb_per_s']:.0f} GB/s**.")
    if s.get("elementwise"):
        lines += ["", "## Elementwise and per-class losses at 2^28 elements", "",
                  "| case | shape | impl | fwd ms | fwd % bw | v&g ms | v&g % bw | agree |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for rec in s["elementwise"]:
            if "timings_ms" not in rec:
                lines.append(f"| {rec['case']} | | | {rec.get('status')} | | | | |")
                continue
            for impl, t in rec["timings_ms"].items():
                pct = rec.get("percent_of_bandwidth", {}).get(impl, {})
                lines.append(
                    f"| {rec['title']} | {'x'.join(map(str, rec['shape']))} | {impl} "
                    f"| {H.fmt_ms(t['forward']['median'])} | {_pct(pct.get('forward'))} "
                    f"| {H.fmt_ms(t['value_and_grad']['median'])} "
                    f"| {_pct(pct.get('value_and_grad'))} | {rec['agreement']['agree']} |")
    if s.get("pairs"):
        lines += ["", "## NT-Xent / SigLIP value_and_grad (d = 256)", "",
                  "| loss | N | dtype | impl | v&g ms | XLA temp | compile s | peak after "
                  "| note |", "|---|---:|---|---|---:|---:|---:|---:|---|"]
        for rec in s["pairs"]:
            if "impls" not in rec:
                lines.append(f"| {rec.get('loss')} | {rec.get('n')} | {rec.get('dtype')} | | "
                             f"| | | | {rec.get('status')} |")
                continue
            for impl, e in rec["impls"].items():
                t = e.get("value_and_grad_ms")
                note = e.get("error") or rec["not_run"].get(impl, "")
                lines.append(
                    f"| {rec['loss']} | {rec['n']} | {rec['dtype']} | {impl} "
                    f"| {H.fmt_ms(t['median'] if t else None)} "
                    f"| {H.fmt_bytes(e.get('temp_bytes'))} "
                    f"| {e.get('compile_s', 0):.1f} | {H.fmt_bytes(e.get('peak_bytes_after'))} "
                    f"| {note} |")
            for impl, why in rec["not_run"].items():
                if impl not in rec["impls"]:
                    lines.append(f"| {rec['loss']} | {rec['n']} | {rec['dtype']} | {impl} "
                                 f"| not run | | | | {why} |")
            lines.append(f"| | | | agreement | {rec['agreement']['agree']} | | | | |")
    arc = s.get("arcface")
    if arc:
        lines += ["", "## ArcFace, 1M classes (value_and_grad w.r.t. embeddings and kernel)", ""]
        if "impls" not in arc:
            lines.append(str(arc.get("status")))
        else:
            lines += ["| impl | block | v&g ms | XLA temp | compile s | peak after | note |",
                      "|---|---:|---:|---:|---:|---:|---|"]
            for impl, e in arc["impls"].items():
                t = e.get("value_and_grad_ms")
                lines.append(
                    f"| {impl} | {arc['block_size'] if impl == 'chunked' else '-'} "
                    f"| {H.fmt_ms(t['median'] if t else None)} "
                    f"| {H.fmt_bytes(e.get('temp_bytes'))} | {e.get('compile_s', 0):.1f} "
                    f"| {H.fmt_bytes(e.get('peak_bytes_after'))} "
                    f"| {e.get('error') or arc['not_run'].get(impl, '')} |")
            lines.append(f"\nAgreement: {arc['agreement']}")
    if s.get("dense"):
        lines += ["", "## Image and segmentation losses", "",
                  "| case | shape | impl | fwd ms | v&g ms | agree |",
                  "|---|---|---|---:|---:|---|"]
        for rec in s["dense"]:
            if "timings_ms" not in rec:
                lines.append(f"| {rec.get('case')} | | | {rec.get('status')} | | |")
                continue
            for impl, t in rec["timings_ms"].items():
                vag = t.get("value_and_grad")
                lines.append(
                    f"| {rec['title']} | {'x'.join(map(str, rec['shape']))} | {impl} "
                    f"| {H.fmt_ms(t['forward']['median'])} "
                    f"| {H.fmt_ms(vag['median'] if vag else None)} "
                    f"| {rec['agreement']['agree']} |")
    if s.get("scale"):
        lines += ["", "## Largest global batch (chunked, bf16, d = 256, one step)", "",
                  "| loss | N | step s | compile s | peak | note |",
                  "|---|---:|---:|---:|---:|---|"]
        for rec in s["scale"]:
            lines.append(
                f"| {rec['loss']} | {rec['n']} | "
                f"{'' if rec.get('step_s') is None else format(rec['step_s'], '.2f')} "
                f"| {'' if 'compile' not in rec else format(rec['compile']['compile_s'], '.1f')} "
                f"| {H.fmt_bytes(rec.get('peak_bytes_in_use'))} | {rec.get('status', '')} |")
    if report.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench --suite gpu",
                                     description="The GPU suite (see bench/README.md).")
    parser.add_argument("--quick", action="store_true",
                        help="every case at tiny sizes, on any backend (a smoke run)")
    parser.add_argument("--out", type=Path, default=H.DEFAULT_OUT)
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole suite (default 420; a hard stop 25 s later)")
    parser.add_argument("--section", default=None,
                        help="only these sections (comma-separated): bandwidth, elementwise, "
                        "pairs, arcface, dense, scale")
    parser.add_argument("--case", default=None,
                        help="only these cases of the elementwise and dense sections")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run the full sizes without a GPU (not advised)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    return parser.parse_args(argv)


SECTIONS = ("bandwidth", "elementwise", "pairs", "arcface", "dense", "scale")


def main(argv: list[str] | None = None) -> dict[str, Any] | int:
    args = parse_args(argv)
    backend = jax.default_backend()
    if backend != "gpu" and not (args.quick or args.allow_cpu):
        print(f"error: the GPU suite needs a GPU, but JAX's backend is {backend!r} "
              f"(devices: {jax.devices()}). Use --quick for a CPU smoke run, or check that "
              "jax[cuda] is installed.", file=sys.stderr)
        return 2
    cfg = dict(QUICK if args.quick else FULL)
    if args.budget is not None:
        cfg["budget_s"] = args.budget
    sections = SECTIONS if args.section is None else tuple(args.section.split(","))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"error: unknown --section {sorted(unknown)}; known: {SECTIONS}", file=sys.stderr)
        return 2
    only = None if args.case is None else set(args.case.split(","))
    clock = Clock(cfg["budget_s"], cfg["section_ends"])
    torch = Torch() if not args.no_torch else Torch.__new__(Torch)
    if args.no_torch:
        torch.torch, torch.device = None, None
    torch_note = None
    if torch.ok and backend == "gpu" and torch.device != "cuda":
        # torch on the host against JAX on the GPU would measure nothing useful (and take
        # minutes at these sizes)
        torch_note = "torch has no CUDA device here: the torch columns are n/a"
        torch.torch, torch.device = None, None
    partial = bool(args.section or args.case)
    stem = "gpu" + ("-quick" if args.quick else "") + ("-partial" if partial else "")
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "suite": "gpu", "created": H.now(),
        "quick": args.quick,
        "environment": H.environment(("optax", "torch", "scipy", "chex", "flax", "kornia")),
        "device": device_info(torch), "torch_device": torch.device,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "sections": {}, "notes": [torch_note] if torch_note else [], "complete": False,
    }
    report["settings"]["xla_python_client"] = {
        k: os.environ.get(k) for k in ("XLA_PYTHON_CLIENT_PREALLOCATE",
                                       "XLA_PYTHON_CLIENT_MEM_FRACTION")}
    s = report["sections"]

    def save() -> None:
        report["total_seconds"] = clock.elapsed()
        H.write_results(args.out, stem, report, markdown(report))

    def log(msg: str) -> None:
        print(f"[{clock.elapsed():6.1f} s] {msg}", file=sys.stderr, flush=True)

    # A hard stop a little past the budget: the results of every finished case are on disk.
    hard = threading.Timer(cfg["budget_s"] + 25.0, lambda: (
        log("hard time limit reached: exiting; the results files hold every finished case"),
        os._exit(3)))
    hard.daemon = True
    if not args.quick:
        hard.start()

    def guarded(what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            rec = fn()
        except Exception as error:
            rec = {"status": f"error: {type(error).__name__}: {str(error)[:600]}",
                   "traceback": traceback.format_exc()[-2000:]}
        rec.setdefault("case", what)
        rec["seconds"] = time.perf_counter() - t0
        log(f"{what}: {rec.get('status', 'ok')} ({rec['seconds']:.1f} s)")
        return rec

    save()
    bandwidth = None
    if "bandwidth" in sections:
        s["bandwidth"] = guarded("bandwidth", lambda: bandwidth_section(cfg, torch))
        bandwidth = s["bandwidth"].get("bandwidth_gb_per_s")
        save()
    if "elementwise" in sections:
        s["elementwise"] = []
        for spec in elementwise_cases():
            if only and spec["case"] not in only:
                continue
            if clock.left("elementwise") <= 0:
                s["elementwise"].append({"case": spec["case"],
                                         "status": "skipped: section time budget spent"})
                continue
            s["elementwise"].append(guarded(spec["case"], lambda spec=spec: elementwise_case(
                spec, cfg, torch, bandwidth)))
            save()
    if "pairs" in sections:
        s["pairs"] = []
        sizes = cfg["pair_sizes"]
        for n in sizes:
            large = n == sizes[-1] and len(sizes) > 1
            rounds = 2 if large else (3 if n != sizes[0] else 5)
            rounds = min(rounds, cfg["rounds"])
            for loss in ("ntxent", "siglip"):
                for dtype in cfg["pair_dtypes"]:
                    what = f"{loss} N={n} {dtype}"
                    if clock.left("pairs") <= 0:
                        s["pairs"].append({"loss": loss, "n": n, "dtype": dtype,
                                           "status": "skipped: section time budget spent"})
                        continue
                    s["pairs"].append(guarded(what, lambda loss=loss, n=n, dtype=dtype, r=rounds,
                                              lg=large: pair_case(loss, n, dtype, cfg, rounds=r,
                                                                  warmup=0 if lg else 1)))
                    save()
    if "arcface" in sections:
        s["arcface"] = guarded("arcface", lambda: arcface_case(cfg, rounds=min(5, cfg["rounds"]),
                                                                warmup=1))
        save()
    if "dense" in sections:
        s["dense"] = []
        for name, thunk in dense_cases(cfg, torch):
            if only and name not in only:
                continue
            if clock.left("dense") <= 0:
                s["dense"].append({"case": name, "status": "skipped: section time budget spent"})
                continue
            s["dense"].append(guarded(name, thunk))
            torch.empty_cache()
            save()
    if "scale" in sections:
        s["scale"] = []
        for loss in ("ntxent", "siglip"):
            last: tuple[int, float] | None = None
            for prior in s.get("pairs", []):  # the chunked bf16 step at the largest pair size
                e = prior.get("impls", {}).get("chunked", {})
                if (prior.get("loss") == loss and prior.get("dtype") == "bfloat16"
                        and e.get("value_and_grad_ms")):
                    last = (prior["n"], e["value_and_grad_ms"]["median"] / 1e3)
            for n in cfg["scale_sizes"]:
                if last is not None and n <= last[0]:
                    continue
                # the other loss still needs its share of what is left
                share = clock.left() / (2 if loss == "ntxent" else 1)
                predicted = None if last is None else last[1] * (n / last[0]) ** 2
                goal = next((m for m in cfg["scale_sizes"] if m >= GOAL_BATCH), None)
                if predicted is not None and goal is not None and n < goal:
                    # a size on the way to the goal is skipped when it would leave too
                    # little time for the goal itself
                    at_goal = last[1] * (goal / last[0]) ** 2
                    if (2 * predicted + 15) + (2 * at_goal + 15) > share:
                        s["scale"].append({"loss": loss, "n": n, "status": (
                            f"skipped to leave time for N={goal} (predicted {at_goal:.0f} s)")})
                        continue
                if predicted is not None and 2 * predicted + 15 > share:
                    s["scale"].append({"loss": loss, "n": n, "status": (
                        f"not run: predicted step {predicted:.0f} s (N² from N={last[0]}) "
                        f"plus compile and check exceed the {share:.0f} s left")})
                    save()
                    break
                rec = guarded(f"scale {loss} N={n}", lambda loss=loss, n=n: scale_step(
                    loss, n, cfg))
                rec.setdefault("loss", loss)
                rec.setdefault("n", n)
                s["scale"].append(rec)
                save()
                if "step_s" not in rec or not math.isfinite(rec.get("value", float("nan"))):
                    break
                last = (n, rec["step_s"])
    report["complete"] = True
    hard.cancel()
    save()
    json_path = Path(args.out) / f"{stem}.json"
    print(markdown(report))
    log(f"wrote {json_path} and {stem}.md")
    return report


if __name__ == "__main__":
    result = main()
    raise SystemExit(result if isinstance(result, int) else 0)
