"""Set-prediction benchmark: Hungarian matching under ``jit`` against scipy, and DETR's criterion.

Usage::

    python -m bench --suite detr            # full run, writes bench/results/detr-cpu.{json,md}
    python -m bench --suite detr --quick    # tiny sizes, few rounds (a smoke run)
    python -m bench.detr --images 64 --queries 300 --targets 50

Matching: a batch of ``--images`` cost matrices of ``--queries`` x
``--targets`` (DETR's matching cost of random predictions against random
boxes, float32), solved

* ``jaxloss (jit, batch)``: ``jaxloss.linear_sum_assignment`` of the whole
  batch, one jitted call;
* ``scipy per image``: one ``scipy.optimize.linear_sum_assignment`` call on
  one image's matrix (the time of one image; the median over the images);
* ``scipy loop (batch)``: scipy on every image of the batch in a Python loop,
  the host matching a DETR training step runs;
* ``hungarian_match (jit)``: ``jaxloss.hungarian_match`` end to end (cost
  matrices and assignment in one program), against ``cost on device + scipy
  loop``: the jitted cost, a transfer to the host and the scipy loop.

Criterion: ``jax.value_and_grad`` of ``jaxloss.detr_criterion`` (``--classes``
+ 1 logits, the matching inside) at the same sizes, jitted. The compile time
of every jitted function is recorded apart from its timing. Before timing, the
total cost of jaxloss's assignment of every image is checked against scipy's
optimum (float64, relative 1e-5).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/detr.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment as scipy_lsa

import jaxloss
from bench import _harness as H

SCHEMA_VERSION = 1
TARGET_OVER_SCIPY_LOOP = 5.0  # the conventions page: within 5x of the per-image scipy loop


def _inputs(rng: np.random.Generator, images: int, queries: int, targets: int, classes: int
            ) -> dict[str, np.ndarray]:
    def boxes(*lead: int) -> np.ndarray:
        return np.concatenate([rng.uniform(0.1, 0.9, (*lead, 2)),
                               rng.uniform(0.02, 0.4, (*lead, 2))], -1).astype(np.float32)

    counts = rng.integers(targets // 2, targets + 1, images)
    counts[0] = targets
    return {
        "logits": rng.normal(size=(images, queries, classes + 1)).astype(np.float32),
        "boxes": boxes(images, queries),
        "labels": rng.integers(0, classes, (images, targets)).astype(np.int32),
        "t_boxes": boxes(images, targets),
        "mask": np.arange(targets)[None] < counts[:, None],
    }


def _cost(logits, boxes, labels, t_boxes):
    """DETR's matching cost ``(N, Q, M)`` (class 1, L1 5, GIoU 2), the matrices timed."""
    prob = jax.nn.softmax(logits, axis=-1)
    cls = -jnp.take_along_axis(prob, jnp.broadcast_to(labels[:, None, :], (*prob.shape[:2],
                                                                         labels.shape[1])), -1)
    l1 = jnp.sum(jnp.abs(boxes[:, :, None] - t_boxes[:, None]), -1)

    def xyxy(b):
        return jaxloss.box_convert(b, in_fmt="cxcywh", out_fmt="xyxy")

    giou = jax.vmap(jaxloss.generalized_box_iou)(xyxy(boxes), xyxy(t_boxes))
    return cls + 5.0 * l1 - 2.0 * giou


def _agreement(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> dict[str, Any]:
    """jaxloss's total cost per image against scipy's optimum (float64)."""
    worst = 0.0
    for c, r, k in zip(cost.astype(np.float64), rows, cols, strict=True):
        best = c[scipy_lsa(c)].sum()
        worst = max(worst, H.rel_diff(c[r, k].sum(), best))
    return {"max_total_cost_rel_diff": worst, "agree": bool(worst <= 1e-5)}


def _markdown(report: dict[str, Any]) -> str:
    s, env = report["settings"], report["environment"]
    head = (f"Hungarian matching of {s['images']} images x {s['queries']} queries x "
            f"{s['targets']} targets and DETR's criterion ({s['classes']} classes); median ms over "
            f"interleaved rounds ({env['jax_backend']}, {env['cpu_count']} CPUs, load average "
            f"{env['load_average'][0]:.1f}, jax {env['jax']}, scipy {env['scipy']})"
            f"{' [quick run]' if report['quick'] else ''}.")
    lines = [head, "", "| what | ms | compile s | vs scipy loop |", "|---|---:|---:|---:|"]
    loop = report["timings_ms"]["scipy loop (batch)"]["median"]
    for name, timing in report["timings_ms"].items():
        compile_s = report["compile_s"].get(name)
        ratio = timing["median"] / loop
        lines.append(f"| {name} | {H.fmt_ms(timing['median'])} | "
                     f"{'' if compile_s is None else f'{compile_s:.2f}'} | {ratio:.2f}× |")
    a = report["agreement"]
    lines += ["", f"jaxloss's total cost equals scipy's optimum on every image (largest "
              f"relative difference {a['max_total_cost_rel_diff']:.1e}). Target: the jitted "
              f"batch within {TARGET_OVER_SCIPY_LOOP:g}× the scipy loop "
              f"({'met' if report['meets_target'] else 'not met'}: "
              f"{report['jaxloss_over_scipy_loop']:.2f}×)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few rounds")
    parser.add_argument("--out", type=Path, default=H.DEFAULT_OUT)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--targets", type=int, default=None)
    parser.add_argument("--classes", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="seconds of timed rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    quick = args.quick
    settings = {
        "images": args.images or (4 if quick else 64),
        "queries": args.queries or (30 if quick else 300),
        "targets": args.targets or (5 if quick else 50),
        "classes": args.classes or (5 if quick else 91),
        "warmup": 1 if quick else 3,
        "min_rounds": 2 if quick else 15,
        "max_rounds": 2 if quick else 101,
        "budget_s": args.budget if args.budget is not None else (0.0 if quick else 20.0),
        "seed": args.seed,
    }
    started = time.perf_counter()
    data = _inputs(np.random.default_rng(args.seed), settings["images"], settings["queries"],
                   settings["targets"], settings["classes"])
    arrays = {k: jnp.asarray(v) for k, v in data.items()}
    logits, boxes, labels, t_boxes, mask = (arrays[k] for k in ("logits", "boxes", "labels",
                                                                "t_boxes", "mask"))
    counts = data["mask"].sum(1)

    def match_fn(x, b):
        return jaxloss.hungarian_match(x, b, labels, t_boxes, mask)

    def criterion_fn(x, b):
        return jaxloss.detr_criterion(x, b, labels, t_boxes, mask)[0]

    compiled = {
        "jaxloss (jit, batch)": H.compile_info(jaxloss.linear_sum_assignment, (
            jax.ShapeDtypeStruct((settings["images"], settings["queries"],
                                  settings["targets"]), jnp.float32),)),
        "hungarian_match (jit)": H.compile_info(match_fn, (logits, boxes)),
        "cost on device + scipy loop": H.compile_info(_cost, (logits, boxes, labels, t_boxes)),
        "detr_criterion value_and_grad (jit)": H.compile_info(
            jax.value_and_grad(criterion_fn, argnums=(0, 1)), (logits, boxes)),
    }
    run = {name: info["compiled"] for name, info in compiled.items()}
    cost = run["cost on device + scipy loop"](logits, boxes, labels, t_boxes)
    cost_np = np.asarray(cost)
    rows, cols = run["jaxloss (jit, batch)"](cost)
    agreement = _agreement(cost_np, np.asarray(rows), np.asarray(cols))

    def scipy_loop(matrices: np.ndarray) -> list:
        return [scipy_lsa(c[:, :k]) for c, k in zip(matrices, counts, strict=True)]

    per_image = {"scipy per image": lambda: scipy_lsa(cost_np[0])}
    calls: dict[str, Callable[[], Any]] = {
        "jaxloss (jit, batch)": lambda: run["jaxloss (jit, batch)"](cost),
        "scipy loop (batch)": lambda: [scipy_lsa(c) for c in cost_np],
        "hungarian_match (jit)": lambda: run["hungarian_match (jit)"](logits, boxes),
        "cost on device + scipy loop": lambda: scipy_loop(np.asarray(
            run["cost on device + scipy loop"](logits, boxes, labels, t_boxes))),
        "detr_criterion value_and_grad (jit)": lambda: run[
            "detr_criterion value_and_grad (jit)"](logits, boxes),
    }
    timings = H.measure({**per_image, **calls}, warmup=settings["warmup"],
                        rounds=settings["max_rounds"], min_rounds=settings["min_rounds"],
                        budget_s=settings["budget_s"], seed=args.seed, block=True)
    ratio = timings["jaxloss (jit, batch)"]["median"] / timings["scipy loop (batch)"]["median"]
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": H.now(),
        "quick": quick,
        "total_seconds": time.perf_counter() - started,
        # the load average says how busy the (shared) machine was during the run
        "environment": H.environment(("scipy",), load_average=list(os.getloadavg())),
        "settings": settings,
        "timings_ms": timings,
        "compile_s": {name: info["compile_s"] for name, info in compiled.items()},
        "temp_bytes": {name: info["temp_bytes"] for name, info in compiled.items()},
        "agreement": agreement,
        "jaxloss_over_scipy_loop": ratio,
        "target_over_scipy_loop": TARGET_OVER_SCIPY_LOOP,
        "meets_target": bool(ratio <= TARGET_OVER_SCIPY_LOOP),
    }
    print(", ".join(f"{n} {t['median']:.3g} ms" for n, t in timings.items()), flush=True)
    stem = H.stem("detr", quick=quick)
    H.write_results(args.out, stem, report, _markdown(report))
    print(f"wrote {args.out / stem}.json and .md")
    return report


if __name__ == "__main__":
    main()
