"""Multi-task train-step benchmark: loss weighting and gradient aggregation vs the summed loss.

Usage::

    python -m bench.multitask            # full run, writes bench/results/multitask-cpu.{json,md}
    python -m bench.multitask --quick    # small sizes, few rounds (a smoke run, not a measurement)
    python -m bench --suite multitask --quick   # the same, through the one entry point
    python -m bench.multitask --out /tmp/bench

Model: an MLP trunk (``--layers`` dense+ReLU layers of width ``--hidden`` on
``--in-dim`` inputs) with ``K`` linear heads, one per task, each trained with
an MSE loss on its own target; batch ``--batch``. For ``K`` in 2, 4 and 8 it
times one jitted train step (loss, gradient, aggregation or weighting, and an
``optax.adam`` update) of:

* ``sum``: ``value_and_grad`` of the summed task losses (the baseline);
* ``uncertainty``, ``famo``: ``jaxloss.weighting`` strategies, one
  ``value_and_grad`` of the weighted total (FAMO in its next-batch mode, no
  extra forward pass);
* ``pcgrad``, ``mgda``, ``upgrad``, ``gradvac``, ``config``, ``dualproj``,
  ``fairgrad``: ``jax.jacrev`` of the ``(K,)`` task losses
  then ``optax.chain(jaxloss.aggregate.<method>(), optax.adam)``;
* ``jacobian_mean``: the same Jacobian step with the trivial ``mean``
  aggregator (the Jacobian-method floor);
* ``jacobian``: ``jax.jacrev`` of the task losses alone (no optimizer).

Reported: medians over interleaved rounds (every step once per round, in a
freshly shuffled order), each step's ratio to ``sum``, and for the Jacobian
methods ``aggregation_over_jacobian = (t_method - t_jacobian_mean) /
t_jacobian``, the time the aggregation adds on top of computing the Jacobian
(target <= 0.20).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/multitask.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench import _harness as H
from jaxloss import aggregate

try:
    from jaxloss import weighting
except ImportError:  # pragma: no cover - weighting is written by another module owner
    weighting = None

SCHEMA_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
TASKS = (2, 4, 8)
AGGREGATORS = ("pcgrad", "mgda", "upgrad", "gradvac", "config", "dualproj", "fairgrad")
WEIGHTINGS = ("uncertainty", "famo")
TARGET_WEIGHTING = 1.1
TARGET_AGGREGATION = 0.20


def _environment() -> dict[str, Any]:
    return H.environment(("optax",))


# ----------------------------------------------------------------------------- model


def _init_params(key: jax.Array, *, in_dim: int, hidden: int, layers: int, tasks: int) -> dict:
    keys = jax.random.split(key, layers + 1)
    trunk, width = [], in_dim
    for index in range(layers):
        trunk.append({"w": jax.random.normal(keys[index], (width, hidden)) / np.sqrt(width),
                      "b": jnp.zeros((hidden,))})
        width = hidden
    heads = {"w": jax.random.normal(keys[-1], (hidden, tasks)) / np.sqrt(hidden),
             "b": jnp.zeros((tasks,))}
    return {"trunk": trunk, "heads": heads}


def _task_losses(params: dict, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    x, y = batch
    h = x
    for layer in params["trunk"]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    preds = h @ params["heads"]["w"] + params["heads"]["b"]    # [N, K]
    return jnp.mean((preds - y) ** 2, axis=0)                   # [K]


# ----------------------------------------------------------------------------- steps


def _steps(params: dict, batch: tuple, tasks: int) -> tuple[dict[str, Callable[[], Any]], list]:
    """Zero-argument callables (closing over jitted steps and their inputs) per method."""
    todo: list[str] = []
    adam = optax.adam(1e-3)
    calls: dict[str, Callable[[], Any]] = {}

    @jax.jit
    def sum_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(lambda p: jnp.sum(_task_losses(p, batch)))(params)
        updates, opt_state = adam.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    sum_state = adam.init(params)
    calls["sum"] = lambda: sum_step(params, sum_state, batch)

    if weighting is None:
        todo.append("famo, uncertainty: jaxloss.weighting not importable; TODO add them")
    else:
        for name in WEIGHTINGS:
            strategy = getattr(weighting, name)()
            wparams, wstate = strategy.init(tasks)

            def make(strategy=strategy):
                def weighted_step(model, extra, opt_state, extra_state, batch):
                    def total_fn(p, wp):
                        total, _, new_state = strategy.update(_task_losses(p, batch), wp,
                                                              extra_state)
                        return total, new_state

                    (total, new_state), grads = jax.value_and_grad(
                        total_fn, argnums=(0, 1), has_aux=True)(model, extra)
                    updates, opt_state = adam.update(grads, opt_state, (model, extra))
                    new = optax.apply_updates((model, extra), updates)
                    return new, opt_state, new_state, total
                return jax.jit(weighted_step)

            step = make()
            opt_state = adam.init((params, wparams))
            calls[name] = (lambda step=step, wparams=wparams, opt_state=opt_state, wstate=wstate:
                           step(params, wparams, opt_state, wstate, batch))

    @jax.jit
    def jacobian(params, batch):
        return jax.jacrev(_task_losses)(params, batch)

    calls["jacobian"] = lambda: jacobian(params, batch)

    for name in ("mean", *AGGREGATORS):
        # GradVac keeps a (K, K) array of cosine targets: it is built for K tasks
        kwargs = {"num_tasks": tasks} if name == "gradvac" else {}
        tx = optax.chain(getattr(aggregate, name)(**kwargs), optax.adam(1e-3))

        def make(tx=tx):
            def jacobian_step(model, opt_state, batch):
                jac = jax.jacrev(_task_losses)(model, batch)
                updates, opt_state = tx.update(jac, opt_state, model)
                return optax.apply_updates(model, updates), opt_state
            return jax.jit(jacobian_step)

        step, opt_state = make(), tx.init(params)
        key = "jacobian_mean" if name == "mean" else name
        calls[key] = lambda step=step, opt_state=opt_state: step(params, opt_state, batch)
    return calls, todo


def _measure(calls: dict[str, Callable[[], Any]], *, warmup: int, min_rounds: int,
             max_rounds: int, budget_s: float, seed: int) -> dict[str, dict[str, float]]:
    return H.measure(calls, warmup=warmup, rounds=max_rounds, min_rounds=min_rounds,
                     budget_s=budget_s, seed=seed)


# ----------------------------------------------------------------------------- report


def _markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"Multi-task train step, MLP trunk {s['layers']}x{s['hidden']} on {s['in_dim']} inputs, "
        f"batch {s['batch']}, K linear MSE heads, optax.adam; median ms over interleaved rounds "
        f"({report['environment']['jax_backend']}, {report['environment']['cpu_count']} CPUs, "
        f"jax {report['environment']['jax']}){' [quick run]' if report['quick'] else ''}.",
        "",
        "| K | params | method | step ms | / sum | aggregation / Jacobian |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for result in report["results"]:
        for name, timing in result["timings_ms"].items():
            ratio = result["ratios_to_sum"].get(name)
            extra = result["aggregation_over_jacobian"].get(name)
            lines.append(
                f"| {result['tasks']} | {result['params']} | {name} | {timing['median']:.3g} | "
                f"{'' if ratio is None else f'{ratio:.2f}x'} | "
                f"{'' if extra is None else f'{100 * extra:+.0f}%'} |")
    if report["todo"]:
        lines += ["", "TODO: " + "; ".join(report["todo"])]
    lines += ["", f"Targets: weighting steps <= {TARGET_WEIGHTING}x the summed step; "
              f"aggregation adds <= {int(100 * TARGET_AGGREGATION)}% on top of the Jacobian "
              "((t_method - t_jacobian_mean) / t_jacobian)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tasks", type=str, default=",".join(map(str, TASKS)))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--in-dim", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="seconds of rounds per K")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    quick = args.quick
    settings = {
        "batch": args.batch or (32 if quick else 256),
        "in_dim": args.in_dim or (16 if quick else 128),
        "hidden": args.hidden or (32 if quick else 512),
        "layers": args.layers or 2,
        "warmup": 1 if quick else 3,
        "min_rounds": 3 if quick else 15,
        "max_rounds": 3 if quick else 201,
        "budget_s": args.budget if args.budget is not None else (0.0 if quick else 20.0),
        "seed": args.seed,
        "optimizer": "optax.adam(1e-3)",
        "aggregation_over_jacobian": "(t_method - t_jacobian_mean) / t_jacobian",
    }
    tasks_list = [int(t) for t in args.tasks.split(",")]
    started = time.perf_counter()
    results, todo = [], []
    for tasks in tasks_list:
        key = jax.random.key(args.seed + tasks)
        params = _init_params(key, in_dim=settings["in_dim"], hidden=settings["hidden"],
                              layers=settings["layers"], tasks=tasks)
        kx, ky = jax.random.split(jax.random.fold_in(key, 1))
        batch = (jax.random.normal(kx, (settings["batch"], settings["in_dim"])),
                 jax.random.normal(ky, (settings["batch"], tasks)))
        calls, missing = _steps(params, batch, tasks)
        todo = sorted(set(todo) | set(missing))
        timings = _measure(calls, warmup=settings["warmup"], min_rounds=settings["min_rounds"],
                           max_rounds=settings["max_rounds"], budget_s=settings["budget_s"],
                           seed=args.seed)
        base = timings["sum"]["median"]
        jac = timings["jacobian"]["median"]
        floor = timings["jacobian_mean"]["median"]
        ratios = {name: t["median"] / base for name, t in timings.items()}
        over = {name: (timings[name]["median"] - floor) / jac for name in AGGREGATORS}
        meets = {name: over[name] <= TARGET_AGGREGATION for name in AGGREGATORS}
        meets.update({name: ratios[name] <= TARGET_WEIGHTING
                      for name in WEIGHTINGS if name in ratios})
        results.append({
            "tasks": tasks,
            "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
            "timings_ms": timings, "ratios_to_sum": ratios,
            "aggregation_over_jacobian": over, "meets_target": meets,
        })
        print(f"K={tasks}: " + ", ".join(f"{n} {t['median']:.3g} ms ({ratios[n]:.2f}x)"
                                         for n, t in timings.items()), flush=True)
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": H.now(),
        "quick": quick,
        "total_seconds": time.perf_counter() - started,
        "environment": _environment(),
        "settings": settings,
        "methods": ["sum", *[w for w in WEIGHTINGS if weighting is not None], "jacobian",
                    "jacobian_mean", *AGGREGATORS],
        "targets": {"weighting_over_sum": TARGET_WEIGHTING,
                    "aggregation_over_jacobian": TARGET_AGGREGATION},
        "todo": todo,
        "results": results,
    }
    stem = H.stem("multitask", quick=quick)
    H.write_results(args.out, stem, report, _markdown(report))
    print(f"wrote {args.out / stem}.json and .md")
    return report


if __name__ == "__main__":
    main()
