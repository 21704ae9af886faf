"""Second-round loss families against their reference implementations in torch.

Usage::

    python -m bench --suite families            # writes bench/results/families-cpu.{json,md}
    python -m bench --suite families --quick    # tiny sizes, few rounds (a smoke run)
    python -m bench --suite families --case lncc,proxy_anchor   # a subset (-partial files)

For each case it measures, in one process, on the same float32 inputs, the
jitted ``value_and_grad`` of the jaxloss loss (gradient with respect to the
predictions; for the proxy losses with respect to the embeddings and the
proxy matrix) against the reference implementation's forward and backward in
torch (eager, the process's CPU threads):

* **keypoint** (heatmaps ``32 x 64 x 48 x 17``, SimCC ``32 x 17`` keypoints of
  384 x 512 bins, OKS on ``256 x 17`` keypoints, Wing on ``256 x 68 x 2``):
  mmpose's ``AdaptiveWingLoss``, ``KeypointMSELoss`` (keypoint weights),
  ``KLDiscretLoss``, ``WingLoss`` and ultralytics' ``KeypointLoss``, written in
  torch in ``bench/families_torch.py``;
* **geometry**: ``silog_loss`` (mmseg) and ``scale_shift_invariant_loss``
  (MiDaS, 4 scales, a mask) on ``8 x 240 x 320`` depth, the edge-aware
  smoothness on the same with an RGB image (kornia's
  ``inverse_depth_smoothness_loss``), the end-point error on ``8 x 256 x 256 x 2``
  flow (kornia's ``metrics.aepe``), and on ``2 x 64 x 64 x 64`` volumes MONAI's
  ``LocalNormalizedCrossCorrelationLoss`` (kernel 9), ``GlobalMutualInformationLoss``
  (23 bins) and ``BendingEnergyLoss`` (a 3-channel displacement);
* **long-tail** (``256 x 1000`` logits): ``distillation_loss`` (mmdet's KD,
  T = 4), ``seesaw_loss`` (mmdet), ``ldam_loss`` (LDAM-DRW), ``asymmetric_loss``
  (timm, multi-label) and ``bi_tempered_logistic_loss`` (t1 = 0.8, t2 = 1.2;
  the authors' loss and closed-form gradient, so the torch side has no backward);
* **proxies** (``256 x 512`` embeddings, 1000 classes): ProxyAnchor, ProxyNCA,
  normalised softmax and SoftTriple (10 centres per class) of
  pytorch-metric-learning, jaxloss dense (``block_size=None``) and chunked.

Recorded for every jaxloss function: the compile time of its jitted
value_and_grad (``lower().compile()``, never inside a timing), XLA's compiled
temporary memory, and the agreement of its value and gradient with the
reference (relative value difference; max gradient difference relative to the
largest reference entry), checked before anything is timed. Every compile over
``COMPILE_LIMIT_S`` (1 s, the performance contract) is listed in
``slow_compiles``. Times are medians of interleaved rounds (``bench/_harness.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/families.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxloss
from bench import _harness as H
from bench import families_torch as ref
from jaxloss.keypoint._common import COCO_SIGMAS

SCHEMA_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
COMPILE_LIMIT_S = 1.0
VALUE_TOL, GRAD_TOL = 1e-4, 1e-3  # float32 on both sides, different summation orders

FULL = {"heatmaps": (32, 64, 48, 17), "simcc": (32, 17, 384, 512), "oks": (256, 17),
        "wing": (256, 68, 2), "depth": (8, 240, 320), "flow": (8, 256, 256),
        "volume": (2, 64, 64, 64), "kernel": 9, "logits": (256, 1000),
        "proxies": {"n": 256, "d": 512, "classes": 1000, "centers": 10, "block": 256},
        "warmup": 2, "min_rounds": 5, "max_rounds": 41, "budget_s": 6.0}
QUICK = {"heatmaps": (2, 8, 6, 3), "simcc": (2, 3, 12, 16), "oks": (4, 5), "wing": (4, 5, 2),
         "depth": (2, 16, 20), "flow": (2, 8, 8), "volume": (1, 8, 8, 8), "kernel": 3,
         "logits": (8, 20), "proxies": {"n": 8, "d": 8, "classes": 12, "centers": 2,
                                        "block": 8},
         "warmup": 1, "min_rounds": 1, "max_rounds": 1, "budget_s": 0.0}


@dataclass
class Built:
    """A case at one size: jaxloss implementations, the torch reference, layouts."""

    jax: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]  # name -> (value_and_grad, args)
    torch: Callable[[], tuple[torch.Tensor, list[torch.Tensor]]]  # -> (value, grads)
    shapes: list[list[int]]
    reference: str
    to_ours: tuple[Callable[[np.ndarray], np.ndarray], ...] | None = None  # grads' layout


def _t(a: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)) if dtype is None else torch.tensor(
        a, dtype=dtype)


def _first(a: np.ndarray) -> np.ndarray:  # channels-last -> channels-first
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def _last(a: np.ndarray) -> np.ndarray:  # channels-first -> channels-last
    return np.moveaxis(a, 1, -1)


def _vg(fn: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    return jax.value_and_grad(fn, argnums=argnums)


def _torch_step(loss_fn: Callable[..., torch.Tensor], *args: torch.Tensor, grad: int = 1
                ) -> Callable[[], tuple[torch.Tensor, list[torch.Tensor]]]:
    """Forward and backward of ``loss_fn(*args)`` with respect to the first ``grad`` args."""
    def step():
        leaves = [a.detach().requires_grad_(True) for a in args[:grad]]
        loss = loss_fn(*leaves, *args[grad:])
        loss.backward()
        return loss, [leaf.grad for leaf in leaves]
    return step


# ----------------------------------------------------------------------------- keypoint


def _heatmaps(cfg, rng):
    shape = cfg["heatmaps"]
    t = rng.uniform(0.0, 1.0, size=shape).astype(np.float32) ** 4
    p = (t + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return p, t


def adaptive_wing(cfg, rng) -> Built:
    p, t = _heatmaps(cfg, rng)
    step = _torch_step(lambda a, b: ref.mmpose_adaptive_wing(a, b, 2.1, 14.0, 1.0, 0.5),
                       _t(_first(p)), _t(_first(t)))
    return Built({"jaxloss": (_vg(jaxloss.adaptive_wing_loss), (p, t))}, step,
                 [list(p.shape)] * 2, "mmpose AdaptiveWingLoss (torch formula)", (_last,))


def heatmap_mse(cfg, rng) -> Built:
    p, t = _heatmaps(cfg, rng)
    w = (rng.uniform(size=(p.shape[0], p.shape[-1])) < 0.8).astype(np.float32)
    step = _torch_step(ref.mmpose_keypoint_mse, _t(_first(p)), _t(_first(t)), _t(w))
    fn = _vg(lambda a, b, c: jaxloss.heatmap_mse_loss(a, b, keypoint_weights=c))
    return Built({"jaxloss": (fn, (p, t, w))}, step, [list(p.shape)] * 2 + [list(w.shape)],
                 "mmpose KeypointMSELoss(use_target_weight=True) (torch formula)", (_last,))


def simcc(cfg, rng) -> Built:
    n, k, bx, by = cfg["simcc"]
    zx = rng.standard_normal((n, k, bx)).astype(np.float32)
    zy = rng.standard_normal((n, k, by)).astype(np.float32)
    cx, cy = rng.uniform(0, bx, (n, k, 1)), rng.uniform(0, by, (n, k, 1))
    qx = np.exp(-((np.arange(bx) - cx) ** 2) / 2 / 4.0**2).astype(np.float32)
    qy = np.exp(-((np.arange(by) - cy) ** 2) / 2 / 4.0**2).astype(np.float32)
    w = (rng.uniform(size=(n, k)) < 0.8).astype(np.float32)
    step = _torch_step(lambda a, b, c, d, e: ref.mmpose_kl_discret(a, b, c, d, e, 10.0, True,
                                                                   10.0),
                       *(_t(a) for a in (zx, zy, qx, qy, w)), grad=2)
    fn = _vg(lambda a, b, c, d, e: jaxloss.simcc_loss(a, b, c, d, weights=e, reduction="sum")
             / k, argnums=(0, 1))
    return Built({"jaxloss": (fn, (zx, zy, qx, qy, w))}, step,
                 [list(zx.shape), list(zy.shape)], "mmpose KLDiscretLoss (torch formula)")


def oks(cfg, rng) -> Built:
    n, k = cfg["oks"]
    gt = rng.uniform(0.0, 100.0, size=(n, k, 2)).astype(np.float32)
    pred = (gt + 8.0 * rng.standard_normal(gt.shape)).astype(np.float32)
    mask = (rng.uniform(size=(n, k)) < 0.8).astype(np.float32)
    areas = rng.uniform(50.0, 5000.0, size=n).astype(np.float32)
    sigmas = np.resize(np.asarray(COCO_SIGMAS, np.float32), k)
    step = _torch_step(lambda a, b, m, s: ref.ultralytics_keypoint_loss(a, b, m, s[:, None],
                                                                        _t(sigmas)),
                       *(_t(a) for a in (pred, gt, mask, areas)))
    fn = _vg(lambda a, b, m, s: jaxloss.oks_loss(a, b, m, s, sigmas=sigmas))
    return Built({"jaxloss": (fn, (pred, gt, mask, areas))}, step, [list(pred.shape)] * 2,
                 "ultralytics KeypointLoss (torch formula)")


def wing(cfg, rng) -> Built:
    n, k, d = cfg["wing"]
    p = (6.0 * rng.standard_normal((n, k, d))).astype(np.float32)
    t = (6.0 * rng.standard_normal((n, k, d))).astype(np.float32)
    # mmpose sums over (K, D) and averages over N: K * D times our mean
    step = _torch_step(lambda a, b: ref.mmpose_wing(a, b, 10.0, 2.0) / (k * d), _t(p), _t(t))
    return Built({"jaxloss": (_vg(jaxloss.wing_loss), (p, t))}, step, [list(p.shape)] * 2,
                 "mmpose WingLoss / (K D) (torch formula)")


# ----------------------------------------------------------------------------- geometry


def _depth(cfg, rng):
    shape = cfg["depth"]
    p = rng.uniform(0.2, 10.0, shape).astype(np.float32)
    t = (p * np.exp(0.3 * rng.normal(size=shape))).astype(np.float32)
    t[rng.random(shape) < 0.2] = 0.0  # missing depth (LiDAR)
    return p, t


def silog(cfg, rng) -> Built:
    p, t = _depth(cfg, rng)
    step = _torch_step(lambda a, b: ref.mmseg_silog(a, b, 0.85, 1e-6), _t(p), _t(t))
    return Built({"jaxloss": (_vg(jaxloss.silog_loss), (p, t))}, step, [list(p.shape)] * 2,
                 "mmseg silog_loss, variance focus 0.85 (torch formula)")


def scale_shift_invariant(cfg, rng) -> Built:
    p, t = _depth(cfg, rng)
    mask = t > 0

    def ours(a, b):
        return jnp.mean(jaxloss.scale_shift_invariant_loss(
            a[..., None], b[..., None], mask=mask[..., None], reduction="none"))

    step = _torch_step(lambda a, b, m: ref.midas_ssi(a, b, m, 0.5, 4).mean(), _t(p), _t(t),
                       _t(mask.astype(np.float32)))
    return Built({"jaxloss": (_vg(ours), (p, t))}, step, [list(p.shape)] * 2,
                 "MiDaS ScaleAndShiftInvariantLoss, 4 scales (torch formula)")


def edge_aware_smoothness(cfg, rng) -> Built:
    import kornia

    d = rng.random(cfg["depth"] + (1,)).astype(np.float32)
    image = rng.random(cfg["depth"] + (3,)).astype(np.float32)
    step = _torch_step(kornia.losses.inverse_depth_smoothness_loss, _t(_first(d)),
                       _t(_first(image)))
    return Built({"jaxloss": (_vg(jaxloss.edge_aware_smoothness_loss), (d, image))}, step,
                 [list(d.shape), list(image.shape)],
                 "kornia.losses.inverse_depth_smoothness_loss", (_last,))


def endpoint_error(cfg, rng) -> Built:
    import kornia

    shape = cfg["flow"] + (2,)
    t = (5.0 * rng.normal(size=shape)).astype(np.float32)
    p = (t + rng.normal(size=shape)).astype(np.float32)
    step = _torch_step(lambda a, b: kornia.metrics.aepe(a, b, reduction="mean"), _t(p), _t(t))
    return Built({"jaxloss": (_vg(jaxloss.endpoint_error_loss), (p, t))}, step,
                 [list(shape)] * 2, "kornia.metrics.aepe")


def _volumes(cfg, rng):
    shape = cfg["volume"] + (1,)
    t = rng.random(shape).astype(np.float32)
    # inside (0, 1): at exactly 0 or 1, MONAI's clamp passes the whole gradient and
    # jnp.clip half of it (a tie of min/max), so the mutual information's gradients differ
    p = (0.7 * t + 0.2 * rng.random(shape) + 0.01).astype(np.float32)
    return p, t


def lncc(cfg, rng) -> Built:
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    p, t = _volumes(cfg, rng)
    k = cfg["kernel"]
    monai = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=k)
    step = _torch_step(monai, _t(_first(p)), _t(_first(t)))
    fn = _vg(lambda a, b: jaxloss.lncc_loss(a, b, kernel_size=k))
    return Built({"jaxloss": (fn, (p, t))}, step, [list(p.shape)] * 2,
                 f"MONAI LocalNormalizedCrossCorrelationLoss(kernel_size={k})", (_last,))


def mutual_information(cfg, rng) -> Built:
    from monai.losses import GlobalMutualInformationLoss

    p, t = _volumes(cfg, rng)
    step = _torch_step(GlobalMutualInformationLoss(num_bins=23, sigma_ratio=0.5),
                       _t(_first(p)), _t(_first(t)))
    return Built({"jaxloss": (_vg(jaxloss.mutual_information_loss), (p, t))}, step,
                 [list(p.shape)] * 2, "MONAI GlobalMutualInformationLoss(num_bins=23)",
                 (_last,))


def bending_energy(cfg, rng) -> Built:
    from monai.losses import BendingEnergyLoss

    u = rng.normal(size=cfg["volume"] + (3,)).astype(np.float32)
    step = _torch_step(BendingEnergyLoss(reduction="sum"), _t(_first(u)))
    fn = _vg(lambda a: jaxloss.bending_energy_loss(a, reduction="sum"))
    return Built({"jaxloss": (fn, (u,))}, step, [list(u.shape)],
                 "MONAI BendingEnergyLoss(reduction='sum')", (_last,))


# ----------------------------------------------------------------------------- long-tail


def _long_tail(cfg, rng):
    n, c = cfg["logits"]
    x = (2.0 * rng.normal(size=(n, c))).astype(np.float32)
    counts = np.round(1280.0 * (5.0 / 1280.0) ** (np.arange(c) / max(c - 1, 1)))
    counts = rng.permutation(counts).astype(np.float32)  # ImageNet-LT's 1280 to 5 images
    y = rng.integers(0, c, size=n).astype(np.int32)
    return x, y, counts


def distillation(cfg, rng) -> Built:
    x, _, _ = _long_tail(cfg, rng)
    teacher = (4.0 * rng.normal(size=x.shape)).astype(np.float32)
    step = _torch_step(lambda a, b: ref.mmdet_kd(a, b, 4.0).mean(), _t(x), _t(teacher))
    fn = _vg(lambda a, b: jaxloss.distillation_loss(a, b, temperature=4.0))
    return Built({"jaxloss": (fn, (x, teacher))}, step, [list(x.shape)] * 2,
                 "mmdet knowledge_distillation_kl_div_loss, T = 4 (torch formula)")


def seesaw(cfg, rng) -> Built:
    x, y, counts = _long_tail(cfg, rng)
    step = _torch_step(lambda a, b, c: ref.mmdet_seesaw(a, b, c).mean(), _t(x),
                       _t(y, torch.long), _t(counts))
    fn = _vg(lambda a, b, c: jaxloss.seesaw_loss(a, b, c))
    return Built({"jaxloss": (fn, (x, y, counts))}, step, [list(x.shape)],
                 "mmdet seesaw_ce_loss (torch formula)")


def ldam(cfg, rng) -> Built:
    x, y, counts = _long_tail(cfg, rng)
    x = 0.15 * x
    step = _torch_step(lambda a, b: ref.ldam(a, b, counts), _t(x), _t(y, torch.long))
    fn = _vg(lambda a, b, c: jaxloss.ldam_loss(a, b, c))
    return Built({"jaxloss": (fn, (x, y, counts))}, step, [list(x.shape)],
                 "LDAM-DRW LDAMLoss, max_m 0.5, s 30 (torch formula)")


def asymmetric(cfg, rng) -> Built:
    x, _, _ = _long_tail(cfg, rng)
    t = (rng.uniform(size=x.shape) < 0.01).astype(np.float32)
    step = _torch_step(lambda a, b: ref.timm_asl(a, b).mean(), _t(x), _t(t))
    return Built({"jaxloss": (_vg(jaxloss.asymmetric_loss), (x, t))}, step,
                 [list(x.shape)] * 2, "timm AsymmetricLossMultiLabel (torch formula)")


def bi_tempered(cfg, rng) -> Built:
    x, y, _ = _long_tail(cfg, rng)
    onehot = _t(np.eye(x.shape[-1], dtype=np.float32)[y])
    xt = _t(x)

    def step():  # the authors' loss and closed-form gradient: no autograd
        with torch.no_grad():
            loss, grad = ref.bi_tempered(xt, onehot, 0.8, 1.2)
        return loss.mean(), [grad / x.shape[0]]

    fn = _vg(lambda a, b: jaxloss.bi_tempered_logistic_loss(a, b, t1=0.8, t2=1.2))
    return Built({"jaxloss": (fn, (x, y))}, step, [list(x.shape)],
                 "google bi-tempered loss, t1 0.8, t2 1.2, 5 iterations (torch formula, "
                 "closed-form gradient)")


# ----------------------------------------------------------------------------- proxies


def _proxy(name: str, pml_name: str, attr: str, transposed: bool, kw: dict[str, Any]
           ) -> Callable[[dict, np.random.Generator], Built]:
    def build(cfg, rng) -> Built:
        from pytorch_metric_learning import losses

        s = cfg["proxies"]
        n, d, c = s["n"], s["d"], s["classes"]
        kwargs = dict(kw)
        k = 1
        if "centers_per_class" in kwargs:
            k = kwargs["centers_per_class"] = s["centers"]
        x = rng.normal(size=(n, d)).astype(np.float32)
        y = rng.integers(0, c, size=n).astype(np.int32)
        matrix = rng.normal(size=(d, c * k)).astype(np.float32)
        loss = getattr(losses, pml_name)(c, d, **kwargs)
        param = torch.nn.Parameter(_t((matrix.T if transposed else matrix).copy()))
        setattr(loss, attr, param)
        xt, yt = _t(x), _t(y, torch.long)

        def step():
            param.grad = None
            leaf = xt.detach().requires_grad_(True)
            value = loss(leaf, yt)
            value.backward()
            return value, [leaf.grad, param.grad.T if transposed else param.grad]

        fn = getattr(jaxloss, name)
        impls = {label: (_vg(lambda a, b, w, block=block: fn(a, b, w, block_size=block, **kwargs),
                             argnums=(0, 2)), (x, y, matrix))
                 for label, block in (("jaxloss", None),
                                      (f"jaxloss block_size={s['block']}", s["block"]))}
        return Built(impls, step, [[n, d], [d, c * k]],
                     f"pytorch_metric_learning {pml_name}")
    return build


CASES: dict[str, tuple[str, Callable[[dict, np.random.Generator], Built]]] = {
    "adaptive_wing": ("keypoint", adaptive_wing),
    "heatmap_mse": ("keypoint", heatmap_mse),
    "simcc": ("keypoint", simcc),
    "oks": ("keypoint", oks),
    "wing": ("keypoint", wing),
    "silog": ("geometry", silog),
    "scale_shift_invariant": ("geometry", scale_shift_invariant),
    "edge_aware_smoothness": ("geometry", edge_aware_smoothness),
    "endpoint_error": ("geometry", endpoint_error),
    "lncc": ("geometry", lncc),
    "mutual_information": ("geometry", mutual_information),
    "bending_energy": ("geometry", bending_energy),
    "distillation": ("long-tail", distillation),
    "seesaw": ("long-tail", seesaw),
    "ldam": ("long-tail", ldam),
    "asymmetric": ("long-tail", asymmetric),
    "bi_tempered": ("long-tail", bi_tempered),
    "proxy_anchor": ("proxies", _proxy("proxy_anchor_loss", "ProxyAnchorLoss", "proxies",
                                       True, {})),
    "proxy_nca": ("proxies", _proxy("proxy_nca_loss", "ProxyNCALoss", "proxies", True,
                                    {"softmax_scale": 4.0})),
    "normalized_softmax": ("proxies", _proxy("normalized_softmax_loss", "NormalizedSoftmaxLoss",
                                             "W", False, {})),
    "soft_triple": ("proxies", _proxy("soft_triple_loss", "SoftTripleLoss", "fc", False,
                                      {"centers_per_class": 10})),
}


# ----------------------------------------------------------------------------- running


def run_case(name: str, family: str, built: Built, cfg: dict[str, Any], seed: int
             ) -> dict[str, Any]:
    t_value, t_grads = built.torch()
    t_grads_np = [g.detach().numpy() for g in t_grads]
    if built.to_ours is not None:
        t_grads_np = [f(g) for f, g in zip(built.to_ours, t_grads_np, strict=True)]
    compile_, agreement, calls = {}, {}, {}
    for impl, (fn, args) in built.jax.items():
        device_args = tuple(jax.device_put(a) for a in args)
        specs = tuple(jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype) for a in args)
        cpu = time.process_time()
        info = H.compile_info(fn, specs)
        compiled = info["compiled"]
        compile_[impl] = {"compile_s": info["compile_s"],
                          "compile_cpu_s": time.process_time() - cpu,
                          "temp_bytes": info["temp_bytes"]}
        value, grads = compiled(*device_args)
        grads = grads if isinstance(grads, tuple) else (grads,)
        agreement[impl] = {
            "value_rel": H.rel_diff(float(value), float(t_value.detach())),
            "grad_rel": max(H.grad_diff(np.asarray(g), tg)
                            for g, tg in zip(grads, t_grads_np, strict=True))}
        calls[impl] = lambda compiled=compiled, device_args=device_args: compiled(*device_args)
    calls["torch"] = built.torch
    timings = H.measure(calls, warmup=cfg["warmup"], rounds=cfg["max_rounds"],
                        min_rounds=cfg["min_rounds"], budget_s=cfg["budget_s"], seed=seed)
    torch_ms = timings["torch"]["median"]
    ratios = {f"{impl}_over_torch": timings[impl]["median"] / torch_ms for impl in built.jax}
    impls = list(built.jax)
    if len(impls) > 1:
        ratios[f"{impls[1]}_over_{impls[0]}"] = (timings[impls[1]]["median"]
                                                 / timings[impls[0]]["median"])
    agree = all(a["value_rel"] <= VALUE_TOL and a["grad_rel"] <= GRAD_TOL
                for a in agreement.values())
    return {"case": name, "family": family, "reference": built.reference,
            "shapes": built.shapes, "status": "ok" if agree else
            f"warning: disagrees with the reference beyond value {VALUE_TOL}, grad {GRAD_TOL}",
            "timings_ms": timings, "ratios": ratios, "compile": compile_,
            "agreement": agreement}


def markdown(report: dict[str, Any]) -> str:
    env, s = report["environment"], report["settings"]
    lines = [
        "# Second-round loss families: jaxloss vs their reference implementations",
        "",
        f"value_and_grad, float32, {env['jax_backend']} ({env['cpu_count']} CPUs, torch "
        f"threads {env['torch_num_threads']}), jax {env['jax']}, torch {env['torch']}; load "
        f"average {s['load_average_start']} at the start, {s['load_average_end']} at the end"
        + (" (quick: tiny sizes, not a measurement)" if report["quick"] else "") + ". "
        "Median ms over interleaved rounds; ratio = jaxloss / reference (below 1: jaxloss "
        f"faster); compile = wall time of the XLA compile of the jitted value_and_grad "
        f"(**bold** over {COMPILE_LIMIT_S:g} s), compile CPU = the process's CPU time "
        "during it (less sensitive to the machine's load); temp = XLA's compiled temporary "
        "memory.",
        "",
        "| family | case | shapes | reference | impl | ms | reference ms | ratio | compile s "
        "| compile CPU s | temp | value rel. diff | grad rel. diff |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        shapes = " ".join("x".join(map(str, shape)) for shape in r["shapes"])
        torch_ms = H.fmt_ms(r["timings_ms"]["torch"]["median"])
        for impl in r["compile"]:
            c, a = r["compile"][impl], r["agreement"][impl]
            secs = f"{c['compile_s']:.2f}"
            if c["compile_s"] > COMPILE_LIMIT_S:
                secs = f"**{secs}**"
            lines.append(
                f"| {r['family']} | {r['case']} | {shapes} | {r['reference']} | {impl} | "
                f"{H.fmt_ms(r['timings_ms'][impl]['median'])} | {torch_ms} | "
                f"{H.fmt_x(r['ratios'][f'{impl}_over_torch'])} | {secs} | "
                f"{c['compile_cpu_s']:.2f} | "
                f"{H.fmt_bytes(c['temp_bytes'])} | {a['value_rel']:.1e} | {a['grad_rel']:.1e} |")
    slow = report["slow_compiles"]
    lines += ["", f"Compiles over {COMPILE_LIMIT_S:g} s: "
              + (", ".join(f"{x['case']} ({x['impl']}, {x['compile_s']:.2f} s, CPU "
                         f"{x['compile_cpu_s']:.2f} s)" for x in slow)
                 if slow else "none") + ".",
              "Not agreeing with the reference: "
              + (", ".join(r["case"] for r in report["results"] if r["status"] != "ok")
                 or "none") + ".", ""]
    return "\n".join(lines)


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--case", default=None,
                        help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=H.cpu_count())
    args = parser.parse_args(argv)
    names = list(CASES) if args.case is None else args.case.split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown --case {', '.join(unknown)}; known: {', '.join(CASES)}")
    cfg = QUICK if args.quick else FULL
    torch.set_num_threads(args.torch_threads)
    load_start = _load()
    started = time.perf_counter()
    results = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence")  # MONAI 1.6
        for index, name in enumerate(names):
            family, build = CASES[name]
            rng = np.random.default_rng(args.seed + index)
            record = run_case(name, family, build(cfg, rng), cfg, args.seed)
            results.append(record)
            print(f"{family}/{name}: " + ", ".join(
                f"{impl} {t['median']:.3g} ms" for impl, t in record["timings_ms"].items())
                + "; compile " + ", ".join(f"{c['compile_s']:.2f} s"
                                           for c in record["compile"].values()), flush=True)
    slow = [{"case": r["case"], "impl": impl, "compile_s": c["compile_s"],
             "compile_cpu_s": c["compile_cpu_s"]}
            for r in results for impl, c in r["compile"].items()
            if c["compile_s"] > COMPILE_LIMIT_S]
    report = H.finite({
        "schema_version": SCHEMA_VERSION,
        "created": H.now(),
        "quick": args.quick,
        "filters": {"case": args.case},
        "total_seconds": time.perf_counter() - started,
        "environment": H.environment(("torch", "kornia", "monai",
                                      "pytorch-metric-learning"),
                                     torch_num_threads=torch.get_num_threads()),
        "settings": {**{k: v for k, v in cfg.items()}, "seed": args.seed,
                     "load_average_start": load_start, "load_average_end": _load(),
                     "compile_limit_s": COMPILE_LIMIT_S,
                     "tolerances": {"value_rel": VALUE_TOL, "grad_rel": GRAD_TOL},
                     "timing": "wall time of one call incl. block_until_ready (torch: forward "
                               "and backward); median over interleaved rounds",
                     "temp_memory": "jax.jit(value_and_grad).lower(ShapeDtypeStructs).compile()"
                                    ".memory_analysis().temp_size_in_bytes"},
        "slow_compiles": slow,
        "results": results,
    })
    table = markdown(report)
    stem = H.stem("families", quick=args.quick, partial=args.case is not None)
    json_path, md_path = H.write_results(args.out, stem, report, table)
    print(table)
    print(f"wrote {json_path} and {md_path}")
    return report


if __name__ == "__main__":
    main()
