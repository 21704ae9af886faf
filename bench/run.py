"""Run the jaxloss benchmarks: jaxloss, optax and PyTorch side by side, as ratios to a floor.

Usage::

    python -m bench                      # this suite ("losses"), results in bench/results/
    python -m bench --quick              # small sizes, few repeats (a smoke run)
    python -m bench --family regression  # or classification; comma-separated lists work
    python -m bench --case bce,focal --out /tmp/bench

For every case and size it measures, in one process and interleaved round by
round (so that load from elsewhere hits every implementation alike):

* the forward time and the ``value_and_grad`` time (gradient with respect to
  the predictions) of the jitted jaxloss loss, the jitted optax equivalent and
  PyTorch eager on the CPU;
* the read-once floor (see ``bench/README.md``): the least work any
  implementation must do, XLA-compiled;
* XLA's compiled temporary memory (``memory_analysis().temp_size_in_bytes``)
  of each jitted function;
* that all implementations agree in value and gradient (a timing of a wrong
  result is worthless).

It writes ``results-<backend>[-quick][-partial].json`` and a ``.md`` table
with the same name to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from bench import _harness as H
from bench import cases as cases_module
from bench._harness import DEFAULT_OUT, MODES, cpu_count, package_version  # noqa: F401
from bench.cases import Case, Size

SCHEMA_VERSION = 1
IMPLEMENTATIONS = ("floor", "jaxloss", "optax", "torch")
README = Path(__file__).resolve().parent / "README.md"
README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"

# Implementations must agree to this relative tolerance (float32 means over up to
# 16M elements summed in different orders differ by ~1e-6 relative).
VALUE_RTOL = 1e-4
GRAD_ATOL_REL = 1e-4  # max |grad difference| relative to max |grad|


# ----------------------------------------------------------------------------- floors


def floor_forward(*arrays: jax.Array) -> jax.Array:
    """Reads every input once: the sum of each input (in float32), added."""
    return sum(jnp.sum(a.astype(jnp.float32)) for a in arrays)


def floor_value_and_grad(predictions: jax.Array, *others: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reads every input once and writes one predictions-shaped output.

    The value is :func:`floor_forward`; the "gradient" is ``predictions * 0 + 1``,
    which XLA cannot fold away (``x * 0`` is not 0 for inf/NaN) and so must
    read ``predictions`` and write an array of its shape.
    """
    value = floor_forward(predictions, *others)
    return value, predictions * jnp.zeros((), predictions.dtype) + jnp.ones((), predictions.dtype)


# ----------------------------------------------------------------------------- environment


def environment(torch_threads: int | None) -> dict[str, Any]:
    return H.environment(("optax", "torch", "kornia"), torch_device="cpu",
                         torch_num_threads=torch_threads)


# ----------------------------------------------------------------------------- measurement


def _block(out: Any) -> Any:
    return jax.block_until_ready(out)


def measure(
    callables: dict[str, Callable[[], Any]],
    *,
    warmup: int,
    repeats: int,
    min_repeats: int,
    budget_s: float,
    rng: np.random.Generator,
) -> dict[str, dict[str, float | int]]:
    """:func:`bench._harness.measure` with this suite's names (callables block themselves)."""
    return H.measure(callables, warmup=warmup, rounds=repeats, min_rounds=min_repeats,
                     budget_s=budget_s, rng=rng, block=False)


def compile_info(fn: Callable[..., Any], args: Sequence[Any], hlo_path: Path | None,
                 ) -> dict[str, Any]:
    """Compile time, XLA's memory analysis and the HLO fingerprint of ``jax.jit(fn)``."""
    return H.compile_info(fn, args, hlo_path=hlo_path, fingerprint=True, keep=False)


hlo_fingerprint = H.hlo_fingerprint
_rel_diff = H.rel_diff
_grad_diff = H.grad_diff


def _to_torch(array: np.ndarray) -> Any:
    import torch

    if np.issubdtype(array.dtype, np.integer):
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(array)


def run_case(case: Case, size: Size, *, args: argparse.Namespace, torch_ok: bool,
             rng: np.random.Generator) -> dict[str, Any]:
    """Measures one case at one size; returns its JSON record."""
    record: dict[str, Any] = {
        "case": case.name,
        "family": case.family,
        "title": case.title,
        "jaxloss": case.jaxloss_name,
        "size": size.label,
        "shape": list(size.shape),
        "elements": size.elements,
        "elementwise": case.elementwise,
        "notes": dict(case.notes),
        "status": "ok",
    }
    jax_loss = case.jaxloss_fn()
    if jax_loss is None:
        record["status"] = f"skipped: jaxloss.{case.jaxloss_name} does not exist"
        return record

    inputs = case.make(rng, size.shape)
    jax_inputs = [jax.device_put(a) for a in inputs]

    # name -> (forward, value_and_grad) as plain functions of the inputs
    jax_impls: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "floor": (floor_forward, floor_value_and_grad),
        "jaxloss": (jax_loss, jax.value_and_grad(jax_loss)),
    }
    if case.optax is not None:
        jax_impls["optax"] = (case.optax, jax.value_and_grad(case.optax))

    callables: dict[str, Callable[[], Any]] = {}
    compile_records: dict[str, dict[str, Any]] = {}
    outputs: dict[str, tuple[float, np.ndarray | None]] = {}
    for name, (fwd, vag) in jax_impls.items():
        compile_records[name] = {}
        for mode, fn in zip(MODES, (fwd, vag), strict=True):
            hlo = None
            if args.dump_hlo:
                hlo = Path(args.dump_hlo) / f"{case.name}_{size.label}_{name}_{mode}.txt"
            compile_records[name][mode] = compile_info(fn, jax_inputs, hlo)
            jitted = jax.jit(fn)
            callables[f"{name}/{mode}"] = (
                lambda jitted=jitted: _block(jitted(*jax_inputs)))
        if name != "floor":
            value, grad = jitted(*jax_inputs)  # the value_and_grad, the last mode
            outputs[name] = (float(value), np.asarray(grad))

    if torch_ok and case.torch is not None:
        import torch

        torch_inputs = [_to_torch(a) for a in inputs]
        leaf = torch_inputs[0].clone().requires_grad_(True)

        def torch_forward() -> Any:
            with torch.no_grad():
                return case.torch(*torch_inputs)

        def torch_vag() -> Any:
            loss = case.torch(leaf, *torch_inputs[1:])
            (grad,) = torch.autograd.grad(loss, leaf)
            return loss, grad

        callables["torch/forward"] = torch_forward
        callables["torch/value_and_grad"] = torch_vag
        loss, grad = torch_vag()
        outputs["torch"] = (float(loss.detach()), grad.numpy())
    elif case.torch is None:
        record["notes"].setdefault("torch", "n/a")
    else:
        record["notes"]["torch"] = "not measured: torch (or kornia) is not installed"

    # Agreement with jaxloss, in value and gradient.
    reference_value, reference_grad = outputs["jaxloss"]
    agreement: dict[str, Any] = {"values": {k: v for k, (v, _) in outputs.items()}}
    ok = True
    for name, (value, grad) in outputs.items():
        if name == "jaxloss":
            continue
        value_diff = _rel_diff(value, reference_value)
        grad_diff = _grad_diff(grad, reference_grad)
        agreement[name] = {"value_rel_diff": value_diff, "grad_rel_diff": grad_diff}
        ok = ok and value_diff <= VALUE_RTOL and grad_diff <= GRAD_ATOL_REL
    agreement["agree"] = ok
    record["agreement"] = agreement
    if not ok:
        record["status"] = "warning: implementations disagree (see agreement)"

    timings = measure(
        callables,
        warmup=args.warmup,
        repeats=args.repeats,
        min_repeats=min(args.min_repeats, args.repeats),
        budget_s=args.budget,
        rng=rng,
    )
    record["timings_ms"] = {
        impl: ({mode: timings[f"{impl}/{mode}"] for mode in MODES}
               if f"{impl}/forward" in timings else None)
        for impl in IMPLEMENTATIONS
    }
    record["compile"] = {impl: compile_records.get(impl) for impl in IMPLEMENTATIONS
                         if impl != "torch"}
    record["temp_bytes"] = {
        impl: ({mode: compile_records[impl][mode]["temp_bytes"] for mode in MODES}
               if impl in compile_records else None)
        for impl in ("floor", "jaxloss", "optax")
    }
    record["ratios"] = ratios(record["timings_ms"])
    if "optax" in compile_records:
        record["same_program_as_optax"] = {
            mode: (compile_records["jaxloss"][mode]["hlo_fingerprint"] is not None
                   and compile_records["jaxloss"][mode]["hlo_fingerprint"]
                   == compile_records["optax"][mode]["hlo_fingerprint"])
            for mode in MODES
        }
    if case.elementwise:
        record["acceptance"] = acceptance(record, args.tolerance)
    return record


def _median(timings: dict[str, Any], impl: str, mode: str) -> float | None:
    entry = timings.get(impl)
    return None if entry is None else entry[mode]["median"]


def ratios(timings: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Median-time ratios: each implementation over the floor, and jaxloss/torch over optax."""
    out: dict[str, dict[str, float | None]] = {}
    for mode in MODES:
        floor = _median(timings, "floor", mode)
        optax = _median(timings, "optax", mode)
        jaxl = _median(timings, "jaxloss", mode)
        entry: dict[str, float | None] = {}
        for impl in ("jaxloss", "optax", "torch"):
            t = _median(timings, impl, mode)
            entry[f"{impl}_over_floor"] = None if t is None or not floor else t / floor
        torch_t = _median(timings, "torch", mode)
        entry["jaxloss_over_optax"] = None if jaxl is None or not optax else jaxl / optax
        entry["jaxloss_over_torch"] = None if jaxl is None or not torch_t else jaxl / torch_t
        out[mode] = entry
    return out


def acceptance(record: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """The acceptance bar of an elementwise loss: at least as fast as optax in forward and
    value_and_grad, and 0 bytes of forward temp memory.

    "At least as fast" allows ``tolerance`` for timing noise, and holds by
    construction where jaxloss compiled to the same XLA program as optax.
    """
    same = record.get("same_program_as_optax") or {}
    fwd = record["ratios"]["forward"]["jaxloss_over_optax"]
    vag = record["ratios"]["value_and_grad"]["jaxloss_over_optax"]
    temp = record["temp_bytes"]["jaxloss"]["forward"]

    def fast(ratio: float | None, mode: str) -> bool:
        return bool(same.get(mode)) or (ratio is not None and ratio <= 1 + tolerance)

    meets = fast(fwd, "forward") and fast(vag, "value_and_grad") and temp == 0
    return {"forward_over_optax": fwd, "value_and_grad_over_optax": vag,
            "forward_temp_bytes": temp, "same_program_as_optax": same,
            "tolerance": tolerance, "meets": bool(meets)}


# ----------------------------------------------------------------------------- markdown


_ms, _x, _bytes = H.fmt_ms, H.fmt_x, H.fmt_bytes


def _same(same: dict[str, bool]) -> str:
    modes = [short for mode, short in zip(MODES, ("fwd", "v&g"), strict=True) if same.get(mode)]
    return " and ".join(modes) if modes else "no"


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        f"Device: {env['jax_backend']} ({env['jax_device_kind']}), {env['cpu_count']} CPUs "
        f"({env['processor']}); torch threads: {env['torch_num_threads']}. "
        f"jax {env['jax']}, optax {env['optax']}, torch {env['torch']}, kornia {env['kornia']}. "
        f"{'Quick run. ' if result['quick'] else ''}"
        f"Median over interleaved rounds (at least {result['settings']['min_repeats']}, at most "
        f"{result['settings']['repeats']}, {result['settings']['budget_s']:.0f} s per case and "
        f"size), {result['settings']['warmup']} warm-up calls; {result['created']}.",
        "",
        "Time (ms, median) and its ratio to the read-once floor; the last two columns are "
        "jaxloss's time over optax's (below 1 = jaxloss faster).",
        "",
        "| case | size | impl | forward ms | fwd / floor | value_and_grad ms | v&g / floor "
        "| jaxloss / optax fwd | jaxloss / optax v&g |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    skipped = []
    for rec in result["results"]:
        if "timings_ms" not in rec:
            skipped.append(f"{rec['case']} ({rec['size']}): {rec['status']}")
            continue
        t, r = rec["timings_ms"], rec["ratios"]
        for impl in IMPLEMENTATIONS:
            entry = t.get(impl)
            if impl == "floor":
                over = ("", "")
            else:
                over = tuple(_x(r[m][f"{impl}_over_floor"]) for m in MODES)
            cross = ("", "")
            if impl == "jaxloss":
                cross = tuple(_x(r[m]["jaxloss_over_optax"]) for m in MODES)
            if entry is None:
                why = rec["notes"].get(impl, "n/a")
                label = "n/a" + (f" ({why.removeprefix('n/a: ')})" if why.startswith("n/a:")
                                 else "")
                lines.append(f"| {rec['title']} | {rec['size']} | {impl} | {label} | | | | | |")
                continue
            lines.append(
                f"| {rec['title']} | {rec['size']} | {impl} | {_ms(entry['forward']['median'])} "
                f"| {over[0]} | {_ms(entry['value_and_grad']['median'])} | {over[1]} "
                f"| {cross[0]} | {cross[1]} |"
            )
    lines += [
        "",
        "XLA compiled temporary memory (`memory_analysis().temp_size_in_bytes`) and "
        "compile time of jaxloss's value_and_grad:",
        "",
        "| case | size | jaxloss fwd | jaxloss v&g | optax fwd | optax v&g | floor v&g "
        "| jaxloss v&g compile s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rec in result["results"]:
        if "temp_bytes" not in rec:
            continue
        tb = rec["temp_bytes"]
        opt = tb.get("optax") or {"forward": None, "value_and_grad": None}
        compile_s = rec["compile"]["jaxloss"]["value_and_grad"]["compile_s"]
        lines.append(
            f"| {rec['title']} | {rec['size']} | {_bytes(tb['jaxloss']['forward'])} "
            f"| {_bytes(tb['jaxloss']['value_and_grad'])} | {_bytes(opt['forward'])} "
            f"| {_bytes(opt['value_and_grad'])} | {_bytes(tb['floor']['value_and_grad'])} "
            f"| {compile_s:.2f} |"
        )
    accepted = [rec for rec in result["results"] if "acceptance" in rec]
    if accepted:
        tol = accepted[0]["acceptance"]["tolerance"]
        lines += [
            "",
            "Acceptance bar of the elementwise losses: jaxloss at least as fast as optax in "
            f"forward and value_and_grad (within {tol:.0%} timing noise, or compiled to the "
            "same XLA program) with 0 bytes of forward temp memory:",
            "",
            "| case | size | fwd jaxloss / optax | v&g jaxloss / optax | fwd temp "
            "| same XLA program as optax | meets |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for rec in accepted:
            a = rec["acceptance"]
            lines.append(
                f"| {rec['title']} | {rec['size']} | {_x(a['forward_over_optax'])} "
                f"| {_x(a['value_and_grad_over_optax'])} | {_bytes(a['forward_temp_bytes'])} "
                f"| {_same(a['same_program_as_optax'])} | {'yes' if a['meets'] else '**no**'} |"
            )
    disagreements = [rec for rec in result["results"]
                     if "agreement" in rec and not rec["agreement"]["agree"]]
    if disagreements:
        lines += ["", "**Implementations disagree** (see the JSON `agreement` field): "
                  + ", ".join(f"{r['case']} ({r['size']})" for r in disagreements)]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    return "\n".join(lines) + "\n"


def update_readme(table: str, readme: Path = README) -> bool:
    """Replaces the results block between the markers in ``bench/README.md``."""
    if not readme.exists():
        return False
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    new = text[: start + len(README_START)] + "\n" + table + text[end:]
    readme.write_text(new)
    return True


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark jaxloss against optax and PyTorch (see bench/README.md).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a smoke run, not a measurement)")
    parser.add_argument("--family", default=None,
                        help="only these families (comma-separated): regression, classification")
    parser.add_argument("--case", default=None,
                        help="only these cases (comma-separated): "
                        + ", ".join(c.name for c in cases_module.CASES))
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="output directory (default: bench/results)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="most timed rounds per case and size (default 101, quick 3)")
    parser.add_argument("--min-repeats", type=int, default=7,
                        help="rounds always run even past --budget (default 7)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls per implementation (default 2, quick 1)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timed rounds per case and size (default 15, quick 2)")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="timing-noise allowance of the acceptance bar (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: the CPUs available)")
    parser.add_argument("--dump-hlo", default=None, metavar="DIR",
                        help="write each compiled function's optimized HLO text here")
    parser.add_argument("--update-readme", action="store_true",
                        help="put the markdown table into bench/README.md")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 101
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.budget is None:
        args.budget = 2.0 if args.quick else 15.0
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        selected = cases_module.select(args.family, args.case)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    torch_ok = False
    torch_threads = None
    if not args.no_torch:
        try:
            import torch

            torch_threads = args.torch_threads or cpu_count()
            torch.set_num_threads(torch_threads)
            torch_ok = True
        except ImportError:
            print("torch is not installed: PyTorch columns are n/a", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created": H.now(),
        "quick": args.quick,
        "filters": {"family": args.family, "case": args.case},
        "environment": environment(torch_threads),
        "settings": {
            "repeats": args.repeats,
            "min_repeats": min(args.min_repeats, args.repeats),
            "warmup": args.warmup,
            "budget_s": args.budget,
            "tolerance": args.tolerance,
            "seed": args.seed,
            "timing": "wall time of one call incl. block_until_ready; median over rounds",
            "floor_forward": "jit(sum of each input, as float32)",
            "floor_value_and_grad": "jit((sum of each input, predictions * 0 + 1))",
            "value_and_grad": "gradient with respect to the predictions (first argument)",
        },
        "results": [],
    }
    total_start = time.perf_counter()
    for case in selected:
        for size in case.quick_sizes if args.quick else case.sizes:
            t0 = time.perf_counter()
            try:
                record = run_case(case, size, args=args, torch_ok=torch_ok, rng=rng)
            except Exception as error:  # one broken loss must not stop the suite
                record = {"case": case.name, "family": case.family, "title": case.title,
                          "jaxloss": case.jaxloss_name, "size": size.label,
                          "shape": list(size.shape), "elements": size.elements,
                          "elementwise": case.elementwise,
                          "status": f"error: {type(error).__name__}: {error}"}
            result["results"].append(record)
            print(_summary_line(record, time.perf_counter() - t0), file=sys.stderr, flush=True)
    result["total_seconds"] = time.perf_counter() - total_start

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"results-{jax.default_backend()}"
    if args.quick:
        stem += "-quick"
    if args.family or args.case:
        stem += "-partial"
    table = markdown(result)
    json_path, md_path = H.write_results(out, stem, result, table)
    print(table)
    print(f"wrote {json_path} and {md_path} ({result['total_seconds']:.0f} s)", file=sys.stderr)
    if args.update_readme:
        if update_readme(table):
            print(f"updated {README}", file=sys.stderr)
        else:
            print(f"could not find the results markers in {README}", file=sys.stderr)
    return 0


_finite = H.finite


def _summary_line(record: dict[str, Any], seconds: float) -> str:
    head = f"{record['case']:>14} {record['size']:>10}"
    if "ratios" not in record:
        return f"{head}  {record['status']}"
    r = record["ratios"]
    parts = []
    for mode, short in zip(MODES, ("fwd", "v&g"), strict=True):
        jf = r[mode]["jaxloss_over_floor"]
        jo = r[mode]["jaxloss_over_optax"]
        parts.append(f"{short}: jaxloss {_x(jf)} floor, {_x(jo)} optax")
    status = "" if record["status"] == "ok" else f"  [{record['status']}]"
    return f"{head}  " + "; ".join(parts) + f"  ({seconds:.1f} s){status}"


if __name__ == "__main__":
    raise SystemExit(main())
