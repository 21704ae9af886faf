"""Dense-head detection benchmark: varifocal and distribution focal losses against their torch
formulas, and the YOLOv8 criterion's step.

Usage::

    python -m bench --suite dense            # writes bench/results/dense-cpu.{json,md}
    python -m bench --suite dense --quick    # small sizes, few rounds (a smoke run)

It measures, in one process, on the same float32 inputs:

* ``varifocal_loss`` (mean) value_and_grad with respect to the logits on
  ``8 x 8400 x 80`` (a YOLOv8 batch at 640 px: 8400 anchors, 80 classes),
  against mmdet's ``varifocal_loss`` formula in torch (``bench/dense_torch.py``)
  with ``.mean().backward()``;
* ``distribution_focal_loss`` (mean) value_and_grad on ``8 x 8400 x 4`` sides
  of ``reg_max = 16`` bins, against mmdet's ``distribution_focal_loss``
  formula (two ``F.cross_entropy`` calls) in torch;
* ``yolo_criterion`` value_and_grad with respect to the class and box logits
  (``8 x 8400 x 80`` and ``8 x 8400 x 64``, 20 ground-truth slots per image,
  12 of them real, anchors of the three YOLOv8 levels at 640 px), against the
  torch rewrite of ultralytics' ``v8DetectionLoss`` (``bench/dense_torch.py``;
  its assigner under ``no_grad``, as ultralytics);

with XLA's compiled temporary memory (``memory_analysis().temp_size_in_bytes``)
of each jitted value_and_grad, its compile time, and the agreement of the two
implementations' values and gradients, checked before anything is timed.
Times are medians of interleaved rounds (``bench/_harness.py``); torch runs
eagerly with the process's CPU threads.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/dense.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import numpy as np
import torch

import jaxloss
from bench import _harness as H
from bench import dense_torch as ref

SCHEMA_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
CASES = ("varifocal", "distribution_focal", "yolo_criterion")

FULL = {"batch": 8, "levels": ((80, 8), (40, 16), (20, 32)), "classes": 80, "reg_max": 16,
        "gt_slots": 20, "gt_real": 12, "warmup": 2, "min_rounds": 5, "max_rounds": 41,
        "budget_s": 10.0}
QUICK = {"batch": 2, "levels": ((8, 8), (4, 16)), "classes": 6, "reg_max": 8,
         "gt_slots": 4, "gt_real": 3, "warmup": 1, "min_rounds": 2, "max_rounds": 2,
         "budget_s": 0.0}


# ----------------------------------------------------------------------------- inputs


def anchors_and_strides(levels: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    points, strides = [], []
    for size, stride in levels:
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], -1) + 0.5)
        strides.append(np.full(size * size, float(stride)))
    return np.concatenate(points).astype(np.float32), np.concatenate(strides).astype(np.float32)


def make_inputs(cfg: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, c, r = cfg["batch"], cfg["classes"], cfg["reg_max"]
    anchors, strides = anchors_and_strides(cfg["levels"])
    a = anchors.shape[0]
    image = cfg["levels"][0][0] * cfg["levels"][0][1]
    logits = rng.normal(-2.0, 2.0, (n, a, c)).astype(np.float32)
    positive = rng.random((n, a, c)) < 0.01
    scores = np.where(positive, rng.uniform(0.05, 1.0, (n, a, c)), 0.0).astype(np.float32)
    bins = rng.normal(size=(n, a, 4, r)).astype(np.float32)
    sides = rng.uniform(0, r - 1 - 0.01, (n, a, 4)).astype(np.float32)
    m, real = cfg["gt_slots"], cfg["gt_real"]
    xy = rng.uniform(0, image * 0.7, (n, m, 2))
    gt = np.concatenate([xy, xy + rng.uniform(16, image * 0.3, (n, m, 2))], -1).astype(np.float32)
    mask = np.zeros((n, m), bool)
    mask[:, :real] = True
    labels = rng.integers(0, c, (n, m)).astype(np.int32)
    return {"logits": logits, "scores": scores, "bins": bins, "sides": sides,
            "box_logits": bins.reshape(n, a, 4 * r), "anchors": anchors, "strides": strides,
            "gt": gt, "mask": mask, "labels": labels}


# ----------------------------------------------------------------------------- the cases


def jax_fns(cfg: dict[str, Any], data: dict[str, np.ndarray]
            ) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Each case's jaxloss value_and_grad and its array arguments."""
    reg_max = cfg["reg_max"]
    anchors, strides = data["anchors"], data["strides"]
    labels, gt, mask = data["labels"], data["gt"], data["mask"]

    def vfl(x, t):
        return jaxloss.varifocal_loss(x, t)

    def dfl(z, y):
        return jaxloss.distribution_focal_loss(z, y)

    def yolo(x, d):
        return jaxloss.yolo_criterion(x, d, anchors, strides, labels, gt, mask,
                                      reg_max=reg_max)[0]

    return {
        "varifocal": (jax.value_and_grad(vfl), (data["logits"], data["scores"])),
        "distribution_focal": (jax.value_and_grad(dfl), (data["bins"], data["sides"])),
        "yolo_criterion": (jax.value_and_grad(yolo, argnums=(0, 1)),
                           (data["logits"], data["box_logits"])),
    }


def torch_fns(cfg: dict[str, Any], data: dict[str, np.ndarray]
              ) -> dict[str, Callable[[], tuple[float, list[np.ndarray]]]]:
    """Each case's torch formula: forward, ``backward()``, and the value and gradients."""
    reg_max = cfg["reg_max"]
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}

    def vfl():
        x = t["logits"].clone().requires_grad_(True)
        loss = ref.mmdet_varifocal(x, t["scores"]).mean()
        loss.backward()
        return loss, [x.grad]

    def dfl():
        z = t["bins"].clone().requires_grad_(True)
        loss = ref.mmdet_distribution_focal(z.view(-1, reg_max), t["sides"].view(-1)).mean()
        loss.backward()
        return loss, [z.grad]

    def yolo():
        x = t["logits"].clone().requires_grad_(True)
        d = t["box_logits"].clone().requires_grad_(True)
        total, _ = ref.v8_detection_loss(x, d, t["anchors"], t["strides"][:, None],
                                         t["labels"][..., None].long(), t["gt"],
                                         t["mask"][..., None].float(), reg_max=reg_max)
        total.backward()
        return total, [x.grad, d.grad]

    return {"varifocal": vfl, "distribution_focal": dfl, "yolo_criterion": yolo}


def run_case(name: str, jax_fn: Callable[..., Any], args: tuple[Any, ...],
             torch_fn: Callable[[], Any], cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    specs = tuple(jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype) for a in args)
    info = H.compile_info(jax_fn, specs, keep=False)
    jitted = jax.jit(jax_fn)
    device_args = tuple(jax.device_put(a) for a in args)
    value, grads = jitted(*device_args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    t_value, t_grads = torch_fn()
    agreement = {"value_rel": H.rel_diff(float(value), float(t_value.detach())),
                 "grad_rel": max(H.grad_diff(np.asarray(g), tg.numpy())
                                 for g, tg in zip(grads, t_grads, strict=True))}
    timings = H.measure({"jaxloss": lambda: jitted(*device_args), "torch": torch_fn},
                        warmup=cfg["warmup"], rounds=cfg["max_rounds"],
                        min_rounds=cfg["min_rounds"], budget_s=cfg["budget_s"], seed=seed)
    ratio = timings["jaxloss"]["median"] / timings["torch"]["median"]
    return {"case": name, "shapes": [list(np.shape(a)) for a in args],
            "timings_ms": timings, "jaxloss_over_torch": ratio,
            "temp_bytes": info["temp_bytes"], "compile_s": info["compile_s"],
            "agreement": agreement}


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        "# Dense-head detection losses: jaxloss vs their torch formulas",
        "",
        f"value_and_grad, float32, {report['environment']['jax_backend']} "
        f"({report['environment']['cpu_count']} CPUs), batch {s['batch']}, {s['anchors']} "
        f"anchors, {s['classes']} classes, reg_max {s['reg_max']}"
        + (" (quick: tiny sizes, not a measurement)" if report["quick"] else "") + ".",
        "",
        "| case | shapes | jaxloss (ms) | torch (ms) | jaxloss / torch | XLA temp | compile (s) "
        "| value rel. diff | grad rel. diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        shapes = " ".join("x".join(map(str, shape)) for shape in r["shapes"])
        lines.append(
            f"| {r['case']} | {shapes} | {H.fmt_ms(r['timings_ms']['jaxloss']['median'])} | "
            f"{H.fmt_ms(r['timings_ms']['torch']['median'])} | {H.fmt_x(r['jaxloss_over_torch'])}"
            f" | {H.fmt_bytes(r['temp_bytes'])} | {r['compile_s']:.2f} | "
            f"{r['agreement']['value_rel']:.1e} | {r['agreement']['grad_rel']:.1e} |")
    lines += ["", "Targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}"
                                         for k, v in report["targets_met"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=H.cpu_count())
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    torch.set_num_threads(args.torch_threads)
    started = time.perf_counter()
    data = make_inputs(cfg, args.seed)
    jfns, tfns = jax_fns(cfg, data), torch_fns(cfg, data)
    results = []
    for name in CASES:
        fn, fn_args = jfns[name]
        record = run_case(name, fn, fn_args, tfns[name], cfg, args.seed)
        results.append(record)
        print(f"{name}: jaxloss {record['timings_ms']['jaxloss']['median']:.2f} ms, torch "
              f"{record['timings_ms']['torch']['median']:.2f} ms, temp "
              f"{H.fmt_bytes(record['temp_bytes'])}", flush=True)
    by_case = {r["case"]: r for r in results}
    targets_met = {f"{case} value_and_grad no slower than torch":
                   bool(by_case[case]["jaxloss_over_torch"] <= 1.0)
                   for case in ("varifocal", "distribution_focal")}
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": H.now(),
        "quick": args.quick,
        "total_seconds": time.perf_counter() - started,
        "environment": H.environment(("torch",), torch_num_threads=torch.get_num_threads()),
        "settings": {"batch": cfg["batch"], "anchors": int(data["anchors"].shape[0]),
                     "classes": cfg["classes"], "reg_max": cfg["reg_max"],
                     "gt_slots": cfg["gt_slots"], "gt_real": cfg["gt_real"],
                     "warmup": cfg["warmup"], "min_rounds": cfg["min_rounds"],
                     "max_rounds": cfg["max_rounds"], "budget_s": cfg["budget_s"],
                     "seed": args.seed,
                     "temp_memory": "jax.jit(value_and_grad).lower(ShapeDtypeStructs).compile()"
                                    ".memory_analysis().temp_size_in_bytes",
                     "timing": "wall time of one call incl. block_until_ready (torch: forward "
                               "and backward); median over interleaved rounds"},
        "targets_met": targets_met,
        "results": results,
    }
    report = H.finite(report)
    table = markdown(report)
    json_path, md_path = H.write_results(args.out, H.stem("dense", quick=args.quick), report,
                                         table)
    print(table)
    print(f"wrote {json_path} and {md_path}")
    return report


if __name__ == "__main__":
    main()
