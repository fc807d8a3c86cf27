"""Which way of computing trains fastest on *this* machine: a short timed probe at start-up.

bf16 autocast, torch.compile and channels_last each help on one CPU and hurt on another.  On a
Xeon with AMX, bf16 + torch.compile was the fastest setup; on an AMD EPYC with AVX-512-BF16 and no
AMX, torch.compile made the same bf16 training slower; a CPU without native bf16 emulates it, far
slower than fp32 (README, "Performance", has the measurements).  No fixed rule covers them all, so
``--probe-setup`` (on in ``--preset cpu-fast``) times them::

    1. every eager candidate: fp32, bf16 autocast where the device computes it natively, each
       with and without channels_last: ``warmup`` optimizer steps, then ``steps`` timed ones;
    2. torch.compile of the fastest eager candidate, the same way (its compile time is shown, and
       paid out of a --max-minutes budget like everything else the probe does; a budget too short to
       repay a compile, ``ddpm_teach.trainer.COMPILE_MIN_BUDGET_MINUTES``, skips this step).

The fastest is chosen; a choice within ``MARGIN`` of a simpler one goes to the simpler one (eager
over compiled, fp32 over bf16, the default memory format over channels_last), so that noise does
not pick a complication.  Every candidate trains a copy of the model with its own optimizer and
random numbers on the run's first batches, so the run itself starts exactly as without the probe.
The result (every candidate's img/s, the choice, the probe's cost and the CPU) is printed and kept
in the checkpoint under ``setup_probe``.

Compiling is the probe's big cost (most of its time on a 2-core CPU when inductor's cache is
cold), so a result is remembered in ``$DDPM_TEACH_CACHE/setup_probe.json`` (default
``~/.cache/ddpm_teach``) under everything it depends on (CPU, torch version, device, threads, the
network and its config, batch, precision and flags fixed), and the next run with the same key
reuses it and says so; ``DDPM_TEACH_PROBE_CACHE=0`` turns that off.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Callable, Collection
from typing import Any

import torch

from .devices import cpu_name

__all__ = ["SETUP_FIELDS", "MARGIN", "candidate_setups", "probe_setup", "describe_setup", "cpu_name", "fixed_fields",
           "cache_key", "cached_probe", "time_setup"]

SETUP_FIELDS = ("mixed_precision", "channels_last", "compile")
MARGIN = 0.03                     # a setup must be 3% faster than a simpler one to be chosen over it


def describe_setup(setup: dict) -> str:
    """"bf16 autocast + torch.compile", "fp32, channels_last", ..."""
    text = {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast", "auto": "autocast (auto)"}[setup["mixed_precision"]]
    if setup["channels_last"]:
        text += ", channels_last"
    return text + (" + torch.compile" if setup["compile"] else " eager")


def _native_reduced_precision(device: torch.device) -> str | None:
    """bf16 where ``device`` computes it natively (:func:`ddpm_teach.devices.native_precision`);
    else fp16 (with a grad scaler) on CUDA, and nothing to probe on a CPU."""
    from .devices import native_precision

    if native_precision(device) == "bf16":
        return "bf16"
    return "fp16" if device.type == "cuda" else None


def candidate_setups(device: torch.device, fixed: dict | None = None) -> list[dict]:
    """The eager candidates on ``device`` (fp32 first, the simplest), with the fields in ``fixed``
    (e.g. ``{"channels_last": False}`` from a flag given on the command line) held at their value."""
    fixed = fixed or {}
    precisions = ["no"] + ([p] if (p := _native_reduced_precision(device)) else [])
    out = []
    for precision in precisions:
        for channels_last in (False, True):
            setup = {"mixed_precision": precision, "channels_last": channels_last, "compile": False}
            if all(setup[k] == v for k, v in fixed.items() if k != "compile"):
                out.append(setup)
    return out


def _simplicity(setup: dict) -> tuple:
    return (setup["compile"], setup["mixed_precision"] != "no", setup["channels_last"])


def _pick(results: list[dict]) -> dict:
    """The fastest, unless a simpler setup is within MARGIN of it."""
    best = max(results, key=lambda r: r["img_per_s"])
    near = [r for r in results if r["img_per_s"] >= best["img_per_s"] * (1 - MARGIN)]
    return min(near, key=lambda r: _simplicity(r["setup"]))


def time_setup(model: torch.nn.Module, setup: dict, batches: list[tuple], step_fn: Callable, device: torch.device,
                warmup: int, steps: int) -> dict:
    """Train a copy of ``model`` with ``setup`` for warmup + steps optimizer steps; img/s of the timed
    ones (``{"setup", "img_per_s", "warmup_seconds"}``).  ``step_fn`` as in :func:`probe_setup`."""
    from .devices import amp_dtype_for, optimizer_options

    def synchronize(device):
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    net = copy.deepcopy(model).train()
    net = net.to(memory_format=torch.channels_last if setup["channels_last"] else torch.contiguous_format)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, **optimizer_options(device))
    run = torch.compile(net) if setup["compile"] else net
    amp = amp_dtype_for(setup["mixed_precision"], device)
    generator = torch.Generator(device=device).manual_seed(12345)
    started = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)
            timed_from = time.perf_counter()
        x0, labels = batches[i % len(batches)]
        if setup["channels_last"]:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        step_fn(run, optimizer, (x0, labels), generator, amp)
    synchronize(device)
    end = time.perf_counter()
    return {"setup": setup, "img_per_s": steps * batches[0][0].shape[0] / (end - timed_from),
            "warmup_seconds": timed_from - started}


def probe_setup(model: torch.nn.Module, batches: list[tuple], step_fn: Callable, device: torch.device, *,
                fixed: dict | None = None, warmup: int = 2, steps: int = 6, try_compile: bool = True,
                log: Callable[[str], Any] | None = print) -> dict:
    """Time the candidates (module docstring) and return ``{"chosen": setup, "candidates": [...],
    "seconds": probe time, "cpu": name, "device": str, "steps": steps}``.

    ``batches`` are the run's first ``(x0, labels)`` batches; ``step_fn(model, optimizer, (x0, labels),
    generator, amp_dtype)`` runs one optimizer step of the run's own loss on one of them; ``fixed`` holds fields the caller has decided (they are not probed)."""
    fixed = dict(fixed or {})
    started = time.perf_counter()
    candidates = candidate_setups(device, fixed)
    try_compile = try_compile and fixed.get("compile", True) is not False
    if not candidates:                      # e.g. bf16 asked for where it is not native: the user's choice stands
        candidates = [{"mixed_precision": fixed.get("mixed_precision", "no"),
                       "channels_last": fixed.get("channels_last", False), "compile": False}]
    if len(candidates) == 1 and not try_compile:          # nothing to choose between: no timing
        chosen = {**candidates[0], "compile": bool(fixed.get("compile", False))}
        if log:
            log(f"setup probe: {describe_setup(chosen)} (the only candidate left by the flags given or the budget; not timed)")
        return {"chosen": chosen, "seconds": 0.0, "cpu": cpu_name(), "device": str(device), "steps": 0,
                "candidates": []}
    results = []
    for setup in candidates:
        results.append(time_setup(model, setup, batches, step_fn, device, warmup, steps))
        if log:
            log(f"setup probe: {describe_setup(setup):32s} {results[-1]['img_per_s']:7.1f} img/s")
    best_eager = _pick(results)
    if try_compile:
        setup = {**best_eager["setup"], "compile": True}
        try:
            results.append(time_setup(model, setup, batches, step_fn, device, warmup, steps))
            if log:
                log(f"setup probe: {describe_setup(setup):32s} {results[-1]['img_per_s']:7.1f} img/s "
                    f"(compiling took {results[-1]['warmup_seconds']:.0f} s)")
        except Exception as err:          # no compiler on this machine, an unsupported op, ...: stay eager
            if log:
                log(f"setup probe: torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
                    "training eager")
    if fixed.get("compile") is True:       # asked for: the compiled version of the best eager one
        chosen = {**best_eager["setup"], "compile": True}
    else:
        chosen = _pick(results)["setup"]
    seconds = time.perf_counter() - started
    if log:
        log(f"setup probe: chose {describe_setup(chosen)} ({seconds:.0f} s of probing, {cpu_name()})")
    return {"chosen": chosen, "seconds": seconds, "cpu": cpu_name(), "device": str(device), "steps": steps,
            "candidates": [{**r["setup"], "img_per_s": round(r["img_per_s"], 2),
                            "warmup_seconds": round(r["warmup_seconds"], 2)} for r in results]}


def _cache_file():
    from pathlib import Path

    base = os.environ.get("DDPM_TEACH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ddpm_teach"
    return Path(base) / "setup_probe.json"


def cache_key(**facts) -> str:
    """A key for the facts a probe's result depends on (plus this CPU and torch version)."""
    facts = {**facts, "cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_probe(key: str, run: Callable[[], dict], log: Callable[[str], Any] | None = print,
                 use_cache: bool = True) -> dict:
    """``run()``'s result, or the one remembered under ``key`` (see the module docstring)."""
    use_cache = use_cache and os.environ.get("DDPM_TEACH_PROBE_CACHE", "1") != "0"
    path = _cache_file()
    entries: dict = {}
    if use_cache:
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        if isinstance(entries, dict) and isinstance(entries.get(key), dict) and "chosen" in entries[key]:
            result = {**entries[key], "cached": True}
            if log:
                log(f"setup probe: {describe_setup(result['chosen'])}, as measured on this machine before "
                    f"({path}; DDPM_TEACH_PROBE_CACHE=0 probes again)")
            return result
    result = run()
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            entries = entries if isinstance(entries, dict) else {}
            entries[key] = result
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entries, indent=1))
            os.replace(tmp, path)
        except OSError:                  # a read-only home: the probe simply runs again next time
            pass
    return result


def fixed_fields(given: Collection[str], values: dict) -> dict:
    """The setup fields a user decided (given on the command line or in a config file)."""
    return {k: values[k] for k in SETUP_FIELDS if k in given}
