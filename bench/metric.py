"""Metric-learning benchmark: memory and time of the dense and chunked all-pairs losses.

Usage::

    python -m bench.metric            # full run, writes bench/results/metric-cpu.{json,md}
    python -m bench.metric --quick    # small sizes, few rounds (a smoke run, not a measurement)
    python -m bench --suite metric --quick   # the same, through the one entry point
    python -m bench.metric --out /tmp/bench

It measures, in one process:

* **NT-Xent** (``jaxloss.ntxent_loss``, labels pairing rows ``2k`` and
  ``2k + 1`` as in SimCLR) at ``N`` in 4096 and 16384, ``d = 128``, three
  implementations: jaxloss *dense* (``block_size=None``: the ``N x N``
  similarity matrix at once), jaxloss *chunked* (``block_size=B``: an online
  log-sum-exp over column blocks, never holding ``N x N``) and
  ``optax.losses.ntxent``. For each, XLA's compiled temporary memory
  (``memory_analysis().temp_size_in_bytes``) of the forward and of
  ``value_and_grad`` (gradient with respect to the embeddings) is read from a
  compile-only lowering on ``jax.ShapeDtypeStruct`` inputs, so nothing is
  allocated. Then every (implementation, mode) whose temp memory is at most
  ``--max-run-gib`` (default 2 GiB, and half of the memory available) is
  timed: median wall time over interleaved rounds, as in ``bench/run.py``
  (only 2 rounds at the largest N, where one call takes up to a minute on 2
  CPU cores). The dense path needs 3-4 GiB at 16384, so by default it is
  compiled but not run there. optax's
  value_and_grad materialises the ``(N, N, d)`` broadcast of its cosine
  similarity (16 GiB at 4096, 262 GiB at 16384), so it is compiled but never run.
* The **block size** ``B`` is chosen, not guessed: every candidate is compiled
  at the largest ``N`` (memory) and timed in value_and_grad at the smallest
  ``N``; ``B`` is the fastest candidate whose memory meets the target.
* **ArcFace** (``jaxloss.arcface_loss``) with 1,000,000 classes, ``N = 1024``,
  ``d = 512`` (a 2 GiB kernel): compile-only temp memory of the forward and of
  value_and_grad with respect to the embeddings *and* the kernel, dense and
  chunked over class blocks.

Targets (from the issue): chunked NT-Xent temp memory <= 200 MiB at
``N = 16384`` and its value_and_grad time <= 1.5x the dense version's;
ArcFace with 1M classes compiles with temp memory <= 200 MiB.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/metric.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from bench import _harness as H

SCHEMA_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
MODES = ("forward", "value_and_grad")
IMPLS = ("dense", "chunked", "optax")
MIB = 2**20
TARGET_TEMP_BYTES = 200 * MIB
TARGET_TIME_RATIO = 1.5

FULL = {"ntxent_sizes": (4096, 16384), "dim": 128, "temperature": 0.1,
        "block_candidates": (256, 512, 1024, 2048),
        "arcface": {"batch": 1024, "dim": 512, "classes": 1_000_000,
                    "blocks": (4096, 8192, 16384)},
        "warmup": 1, "min_rounds": 5, "max_rounds": 51, "budget_s": 12.0, "sweep_budget_s": 5.0,
        # one call of the chunked value_and_grad at N=16384 takes about a minute on 2 CPU
        # cores: the largest N gets 2 rounds, no extra warm-up (the agreement call compiles)
        "large_rounds": 2}
QUICK = {"ntxent_sizes": (256, 512), "dim": 16, "temperature": 0.1,
         "block_candidates": (64, 128),
         "arcface": {"batch": 32, "dim": 16, "classes": 5000, "blocks": (512, 1024)},
         "warmup": 1, "min_rounds": 2, "max_rounds": 2, "budget_s": 0.0, "sweep_budget_s": 0.0,
         "large_rounds": 2}


# ----------------------------------------------------------------------------- environment


_available_bytes = H.available_bytes


def _environment() -> dict[str, Any]:
    return H.environment(("optax",), memory_available_bytes=_available_bytes())


# ----------------------------------------------------------------------------- measurement


def compile_info(fn: Callable[..., Any], specs: tuple[Any, ...]) -> dict[str, Any]:
    """Compile-only (:func:`bench._harness.compile_info`): temp memory and compile time."""
    return H.compile_info(fn, specs, keep=False)


def measure(calls: dict[str, Callable[[], Any]], *, warmup: int, min_rounds: int,
            max_rounds: int, budget_s: float, seed: int) -> dict[str, dict[str, float]]:
    """Median (and min) wall time in ms per call (:func:`bench._harness.measure`)."""
    return H.measure(calls, warmup=warmup, rounds=max_rounds, min_rounds=min_rounds,
                     budget_s=budget_s, seed=seed)


# ----------------------------------------------------------------------------- NT-Xent


def ntxent_impls(block_size: int, temperature: float) -> dict[str, Callable[..., jax.Array]]:
    def dense(x: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.ntxent_loss(x, y, temperature=temperature)

    def chunked(x: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.ntxent_loss(x, y, temperature=temperature, block_size=block_size)

    def optax_ntxent(x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.losses.ntxent(x, y, temperature=temperature)

    return {"dense": dense, "chunked": chunked, "optax": optax_ntxent}


def _mode_fn(fn: Callable[..., jax.Array], mode: str) -> Callable[..., Any]:
    return fn if mode == "forward" else jax.value_and_grad(fn)


def ntxent_specs(n: int, d: int) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
    return (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.int32))


def ntxent_inputs(n: int, d: int, seed: int) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.arange(n) // 2).astype(np.int32)  # SimCLR-like: rows 2k and 2k+1 are a pair
    return jax.device_put(x), jax.device_put(y)


def choose_block(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Memory of every candidate at the largest N, value_and_grad time at the smallest."""
    small, large = min(cfg["ntxent_sizes"]), max(cfg["ntxent_sizes"])
    d, t = cfg["dim"], cfg["temperature"]
    x, y = ntxent_inputs(small, d, seed)
    candidates, calls = [], {}
    for block in cfg["block_candidates"]:
        fn = ntxent_impls(block, t)["chunked"]
        temp = compile_info(jax.value_and_grad(fn), ntxent_specs(large, d))["temp_bytes"]
        vag = jax.jit(jax.value_and_grad(fn))
        calls[str(block)] = lambda vag=vag: vag(x, y)
        candidates.append({"block_size": block, f"value_and_grad_temp_bytes_at_{large}": temp})
    timings = measure(calls, warmup=cfg["warmup"], min_rounds=cfg["min_rounds"],
                      max_rounds=cfg["max_rounds"], budget_s=cfg["sweep_budget_s"], seed=seed)
    for entry in candidates:
        entry[f"value_and_grad_ms_at_{small}"] = timings[str(entry["block_size"])]["median"]
    fits = [c for c in candidates
            if c[f"value_and_grad_temp_bytes_at_{large}"] is not None
            and c[f"value_and_grad_temp_bytes_at_{large}"] <= TARGET_TEMP_BYTES]
    pool = fits or candidates
    best = min(pool, key=lambda c: c[f"value_and_grad_ms_at_{small}"])
    rule = (f"fastest value_and_grad at N={small} among the candidates with value_and_grad "
            f"temp <= {TARGET_TEMP_BYTES // MIB} MiB at N={large}")
    return {"chosen": best["block_size"], "rule": rule, "candidates": candidates}


def ntxent_case(n: int, block: int, cfg: dict[str, Any], *, run_limit: int,
                seed: int) -> dict[str, Any]:
    d, t = cfg["dim"], cfg["temperature"]
    impls = ntxent_impls(block, t)
    temp: dict[str, dict[str, int | None]] = {}
    compile_s: dict[str, dict[str, float]] = {}
    for name, fn in impls.items():
        temp[name], compile_s[name] = {}, {}
        for mode in MODES:
            info = compile_info(_mode_fn(fn, mode), ntxent_specs(n, d))
            temp[name][mode], compile_s[name][mode] = info["temp_bytes"], info["compile_s"]

    x, y = ntxent_inputs(n, d, seed + n)
    calls: dict[str, Callable[[], Any]] = {}
    not_run: dict[str, str] = {}
    values: dict[str, float] = {}
    grads: dict[str, np.ndarray] = {}
    for name, fn in impls.items():
        for mode in MODES:
            bytes_ = temp[name][mode]
            if bytes_ is not None and bytes_ > run_limit:
                not_run[f"{name}/{mode}"] = (f"not run: {bytes_ / 2**30:.1f} GiB of temp memory "
                                             f"> run limit {run_limit / 2**30:.1f} GiB")
                continue
            jitted = jax.jit(_mode_fn(fn, mode))
            calls[f"{name}/{mode}"] = lambda jitted=jitted: jitted(x, y)
            if mode == "value_and_grad":
                value, grad = jitted(x, y)
                values[name], grads[name] = float(value), np.asarray(grad)
            elif name not in values:
                values[name] = float(jitted(x, y))
    if n == max(cfg["ntxent_sizes"]):
        rounds = {"warmup": 0, "min_rounds": cfg["large_rounds"],
                  "max_rounds": cfg["large_rounds"], "budget_s": 0.0}
    else:
        rounds = {key: cfg[key] for key in ("warmup", "min_rounds", "max_rounds", "budget_s")}
    timings = measure(calls, seed=seed, **rounds)

    reference = "dense" if "dense" in values else "chunked"
    agreement: dict[str, Any] = {"values": values, "reference": reference}
    for name in values:
        if name == reference:
            continue
        entry = {"value_rel_diff": abs(values[name] - values[reference])
                 / max(abs(values[reference]), 1e-30)}
        if name in grads and reference in grads:
            scale = float(np.max(np.abs(grads[reference])))
            entry["grad_rel_diff"] = (float(np.max(np.abs(grads[name] - grads[reference])))
                                      / max(scale, 1e-30))
        agreement[name] = entry

    timings_ms = {name: {mode: timings.get(f"{name}/{mode}") for mode in MODES}
                  for name in impls}
    dense_vag = (timings_ms["dense"]["value_and_grad"] or {}).get("median")
    chunked_vag = (timings_ms["chunked"]["value_and_grad"] or {}).get("median")
    ratio = chunked_vag / dense_vag if dense_vag and chunked_vag else None
    chunked_temp = temp["chunked"]["value_and_grad"]
    return {
        "loss": "ntxent", "n": n, "d": d, "block_size": block, "temperature": t,
        "rounds": rounds,
        "temp_bytes": temp, "compile_s": compile_s, "timings_ms": timings_ms,
        "not_run": not_run, "agreement": agreement,
        "chunked_over_dense_value_and_grad": ratio,
        "meets": {
            "chunked_temp_le_200mib": chunked_temp is not None
            and chunked_temp <= TARGET_TEMP_BYTES,
            "chunked_time_le_1.5x_dense": None if ratio is None else ratio <= TARGET_TIME_RATIO,
        },
    }


# ----------------------------------------------------------------------------- ArcFace


def arcface_case(cfg: dict[str, Any]) -> dict[str, Any]:
    a = cfg["arcface"]
    n, d, c = a["batch"], a["dim"], a["classes"]
    specs = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.int32),
             jax.ShapeDtypeStruct((d, c), jnp.float32))
    rows = []
    for block in (None, *a["blocks"]):
        def loss(x: jax.Array, y: jax.Array, kernel: jax.Array, block: int | None = block,
                 ) -> jax.Array:
            return jaxloss.arcface_loss(x, y, kernel, block_size=block)

        fwd = compile_info(loss, specs)
        vag = compile_info(jax.value_and_grad(loss, argnums=(0, 2)), specs)
        vag_temp = vag["temp_bytes"]
        rows.append({"impl": "dense" if block is None else "chunked", "block_size": block,
                     "temp_bytes": {"forward": fwd["temp_bytes"], "value_and_grad": vag_temp},
                     "compile_s": {"forward": fwd["compile_s"], "value_and_grad": vag["compile_s"]},
                     "meets_temp_le_200mib": vag_temp is not None
                     and vag_temp <= TARGET_TEMP_BYTES})
    return {"loss": "arcface", "n": n, "d": d, "classes": c,
            "kernel_bytes": d * c * 4, "value_and_grad_wrt": ["embeddings", "kernel"],
            "rows": rows}


# ----------------------------------------------------------------------------- report


def _bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    for unit, size in (("GiB", 2**30), ("MiB", MIB), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _ms(entry: dict[str, float] | None) -> str:
    return "not run" if entry is None else f"{entry['median']:.3g}"


def markdown(report: dict[str, Any]) -> str:
    env, s = report["environment"], report["settings"]
    lines = [
        f"Metric-learning losses on {env['jax_backend']} ({env['cpu_count']} CPUs, "
        f"jax {env['jax']}, optax {env['optax']}); median ms over interleaved rounds "
        f"(at least {s['min_rounds']}){' [quick run]' if report['quick'] else ''}; "
        f"{report['created']}.",
        "",
        f"NT-Xent, d = {s['dim']}, temperature {s['temperature']}, labels pairing rows 2k and "
        f"2k+1; chunked = `block_size={report['block_size']['chosen']}` "
        f"({report['block_size']['rule']}). XLA temp memory from a compile-only lowering; "
        "times of value_and_grad are with respect to the embeddings.",
        "",
        "| N | impl | fwd temp | v&g temp | fwd ms | v&g ms | v&g / dense |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["ntxent"]:
        dense = (r["timings_ms"]["dense"]["value_and_grad"] or {}).get("median")
        for impl in IMPLS:
            t = r["timings_ms"][impl]
            vag = (t["value_and_grad"] or {}).get("median")
            ratio = f"{vag / dense:.2f}x" if vag and dense else ""
            lines.append(f"| {r['n']} | {impl} | {_bytes(r['temp_bytes'][impl]['forward'])} | "
                         f"{_bytes(r['temp_bytes'][impl]['value_and_grad'])} | "
                         f"{_ms(t['forward'])} | {_ms(t['value_and_grad'])} | {ratio} |")
    lines += ["", "Block-size candidates (chunked NT-Xent value_and_grad):", "",
              "| block | temp at largest N | ms at smallest N |", "|---:|---:|---:|"]
    for c in report["block_size"]["candidates"]:
        temp_key = next(k for k in c if k.startswith("value_and_grad_temp"))
        ms_key = next(k for k in c if k.startswith("value_and_grad_ms"))
        lines.append(f"| {c['block_size']} | {_bytes(c[temp_key])} | {c[ms_key]:.3g} |")
    a = report["arcface"]
    lines += ["", f"ArcFace, {a['classes']:,} classes, N = {a['n']}, d = {a['d']} (kernel "
              f"{_bytes(a['kernel_bytes'])}); compile only; value_and_grad with respect to the "
              "embeddings and the kernel:", "",
              "| impl | block | fwd temp | v&g temp | v&g <= 200 MiB |", "|---|---:|---:|---:|---|"]
    for row in a["rows"]:
        lines.append(f"| {row['impl']} | {row['block_size'] or ''} | "
                     f"{_bytes(row['temp_bytes']['forward'])} | "
                     f"{_bytes(row['temp_bytes']['value_and_grad'])} | "
                     f"{'yes' if row['meets_temp_le_200mib'] else 'no'} |")
    lines += ["", "Targets:"]
    for key, value in report["targets_met"].items():
        lines.append(f"- {key}: {value}")
    if any(r["not_run"] for r in report["ntxent"]):
        lines += ["", "Not run (memory):"]
        for r in report["ntxent"]:
            for key, why in r["not_run"].items():
                lines.append(f"- N={r['n']} {key}: {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--max-run-gib", type=float, default=2.0,
                        help="time only functions whose XLA temp memory is at most this "
                             "(and half of the available memory); default 2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = QUICK if args.quick else FULL
    run_limit = int(args.max_run_gib * 2**30)
    available = _available_bytes()
    if available is not None:
        run_limit = min(run_limit, available // 2)
    started = time.perf_counter()
    block = choose_block(cfg, args.seed)
    print(f"block size {block['chosen']}: {block['candidates']}", flush=True)
    ntxent = []
    for n in cfg["ntxent_sizes"]:
        record = ntxent_case(n, block["chosen"], cfg, run_limit=run_limit, seed=args.seed)
        ntxent.append(record)
        print(f"ntxent N={n}: temp " + ", ".join(
            f"{impl} {_bytes(record['temp_bytes'][impl]['value_and_grad'])}" for impl in IMPLS)
            + f"; chunked/dense v&g {record['chunked_over_dense_value_and_grad']}", flush=True)
    arcface = arcface_case(cfg)
    print("arcface: " + ", ".join(f"{r['block_size']} {_bytes(r['temp_bytes']['value_and_grad'])}"
                                  for r in arcface["rows"]), flush=True)

    largest = max(ntxent, key=lambda r: r["n"])
    ratios = [r["chunked_over_dense_value_and_grad"] for r in ntxent
              if r["chunked_over_dense_value_and_grad"] is not None]
    targets_met = {
        f"chunked NT-Xent v&g temp <= 200 MiB at N={largest['n']}":
            largest["meets"]["chunked_temp_le_200mib"],
        "chunked NT-Xent v&g time <= 1.5x dense (every N where dense ran)":
            bool(ratios) and all(r <= TARGET_TIME_RATIO for r in ratios),
        f"ArcFace {arcface['classes']:,} classes chunked v&g temp <= 200 MiB":
            any(r["meets_temp_le_200mib"] for r in arcface["rows"] if r["impl"] == "chunked"),
    }
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": H.now(),
        "quick": args.quick,
        "total_seconds": time.perf_counter() - started,
        "environment": _environment(),
        "settings": {"dim": cfg["dim"], "temperature": cfg["temperature"],
                     "ntxent_sizes": list(cfg["ntxent_sizes"]),
                     "warmup": cfg["warmup"], "min_rounds": cfg["min_rounds"],
                     "max_rounds": cfg["max_rounds"], "budget_s": cfg["budget_s"],
                     "run_limit_bytes": run_limit, "seed": args.seed,
                     "temp_memory": "jax.jit(f).lower(ShapeDtypeStructs).compile()"
                                    ".memory_analysis().temp_size_in_bytes",
                     "timing": "wall time of one call incl. block_until_ready; "
                               "median over interleaved rounds"},
        "targets": {"temp_bytes": TARGET_TEMP_BYTES, "chunked_over_dense": TARGET_TIME_RATIO},
        "targets_met": targets_met,
        "block_size": block,
        "ntxent": ntxent,
        "arcface": arcface,
    }
    stem = H.stem("metric", quick=args.quick)
    table = markdown(report)
    H.write_results(args.out, stem, report, table)
    print(table)
    print(f"wrote {args.out / stem}.json and .md ({report['total_seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
