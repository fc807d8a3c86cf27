"""Every GPU-only figure of the README from one command, prepared for the day a GPU is lent.

    python benchmarks/gpu_suite.py                        # one GPU, about 8 minutes: results/gpu_suite.{json,md}
    python benchmarks/gpu_suite.py --parts quality memory # a subset; the other parts of an earlier --out are kept
    python benchmarks/gpu_suite.py --dry-run              # the CPU, toy sizes, under a minute: every code path

The parts run in this order.  Each gets a share of ``--budget-minutes`` (past its share a part skips
its remaining rows, and a subprocess is stopped), and each is written to the JSON and the markdown
as soon as it finishes, so that a run cut off by the machine's time limit keeps what it measured:

1. ``train``: training throughput and MFU.  Our UNet (``UNetConfig()``, the model of ``--preset
   gpu``) and the diffusers peer (``common.build_peer(layout="matched")``) run the trainer's own
   step (:func:`ddpm_teach.training.train_step`: Algorithm 1, grad clip, EMA, the loss read back
   every step) with the preset's settings: batch 256, bf16 autocast (fp16 where bf16 is not
   native), torch.compile, fused AdamW, Fashion-MNIST resident on the GPU.  img/s, ms/step,
   TFLOP/s (FlopCounterMode's forward+backward FLOPs × img/s) and MFU against ``peak_tflops``.
2. ``sample``: DDIM-50 images/s at batch 256 and 1024, in fp32 and in the autocast dtype, under
   ``torch.inference_mode``: ours (``DDIMSampler`` + ``sample``) against the peer network driven by
   diffusers' ``DDIMScheduler`` (``sample_throughput.diffusers_ddim``), leading spacing for both.
3. ``fid``: ``python -m ddpm_teach train --preset gpu --max-minutes 3`` in a subprocess.  The
   trainer replaces its checkpoint every ``--checkpoint-every`` steps; each one is kept as it
   appears, with its time since the run started, and scored: DDIM-50 from the EMA weights, N=1000,
   classifier-FID with the real-vs-real floor at N.
4. ``quality``: ``benchmarks/quality_tables.py --n 5000 --resume`` for what the budget has left.
   Its JSON keeps every finished row, so the next run continues where this one stopped.
5. ``memory``: ``torch.cuda.max_memory_allocated`` over two eager ``train_step`` calls (the second
   has AdamW's moments) of the gpu preset's UNet at batch 256 and of the UNet of
   ``configs/photos64_gpu.toml`` at its batch (``image_sizes.gpu_peak_bytes`` for any channels).

``--dry-run`` runs every part on the CPU at toy sizes (a base-8 UNet, batch 4, 2 timed steps, one
DDIM step, N=16, a 3-step training run, the quick quality tables at N=8) without torch.compile.
Its JSON says ``"dry_run": true`` and its markdown's title says DRY RUN: its numbers are not GPU
numbers, and it refuses to overwrite a GPU run's JSON.

The GPU machine needs Fashion-MNIST (its four IDX files: ``--data-root``, passed on to the
subprocesses as DDPM_TEACH_DATA) and, for the peer rows, diffusers (``pip install -e '.[bench]'``);
without diffusers those rows are skipped with a line that says so.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.common import REPO_ROOT, Sizes, diffusers_version, machine_header
from benchmarks.gpu_suite_parts import part_memory, part_sample, part_train, peak_train_bytes
from benchmarks.gpu_suite_results import Results, earlier_parts, markdown, saved_run
from benchmarks.gpu_suite_setup import (NOT_MEASURED, PARTS, RESULTS, SUITE, TITLES, Scale, Suite, dry_scale,
                                        gpu_scale, now_utc, part_seconds, relative)
from benchmarks.gpu_suite_subprocess import Finished, SnapshotWatcher, part_fid, part_quality, run_bounded
from ddpm_teach.data import DatasetNotFoundError, load_dataset
from ddpm_teach.devices import describe_device, pick_device
from ddpm_teach.files import OutputError, check_output_dir, check_output_file
from ddpm_teach.trainer import amp_dtype_for

__all__ = ["PARTS", "NOT_MEASURED", "Scale", "gpu_scale", "dry_scale", "part_seconds", "run_bounded", "Finished",
           "SnapshotWatcher", "peak_train_bytes", "earlier_parts", "markdown", "main"]


# ----------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------

PART_FUNCTIONS = {"train": part_train, "sample": part_sample, "fid": part_fid, "quality": part_quality,
                  "memory": part_memory}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="every part on the CPU at toy sizes, without torch.compile (the tests' check)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts (they run in "
                        "the order listed here; an earlier --out's other parts are kept)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON, with the markdown next to it (.md) (default: "
                        "benchmarks/results/gpu_suite.json; with --dry-run runs/gpu_suite_dry_run.json)")
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="the whole run (default 8)")
    parser.add_argument("--device", default=None, help="default cuda (cpu with --dry-run)")
    parser.add_argument("--fid-minutes", type=float, default=3.0, help="part 3's training budget (default 3)")
    parser.add_argument("--fid-n", type=int, default=None, help="part 3's samples per checkpoint (default 1000; 16 dry)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="part 3's checkpoint interval in steps, each one scored (default 1000; 1 dry)")
    parser.add_argument("--quality-out", type=Path, default=None, help="part 4's JSON (default "
                        "benchmarks/results/quality_n5000.json; with --dry-run next to --out)")
    parser.add_argument("--run-dir", type=Path, default=None, help="part 3's training run and the logs (default "
                        "runs/gpu_suite; with --dry-run next to --out)")
    parser.add_argument("--data-root", default=None, help="where Fashion-MNIST lives (DDPM_TEACH_DATA for the subprocesses)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def make_suite(args: argparse.Namespace, device: torch.device) -> Suite:
    scale = dry_scale() if args.dry_run else gpu_scale()
    args.fid_n = args.fid_n or scale.fid_n
    args.checkpoint_every = args.checkpoint_every or scale.checkpoint_every
    out = args.out or (REPO_ROOT / "runs" / "gpu_suite_dry_run.json" if args.dry_run else RESULTS / "gpu_suite.json")
    run_dir = args.run_dir or (out.parent / f"{out.stem}_run" if args.dry_run else REPO_ROOT / "runs" / "gpu_suite")
    quality_out = args.quality_out or (out.parent / f"{out.stem}_quality.json" if args.dry_run
                                       else RESULTS / "quality_n5000.json")
    amp_dtype = amp_dtype_for(scale.train.mixed_precision, device)
    return Suite(args, device, scale, amp_dtype, None, out, run_dir, quality_out)


def check_outputs(suite: Suite) -> None:
    """Every file the run writes can be written, before any work; a dry run never replaces a GPU run's JSON."""
    check_output_file(suite.out, "--out")
    check_output_file(suite.out.with_suffix(".md"), "--out")
    check_output_dir(suite.run_dir, "--run-dir")
    if "quality" in suite.args.parts:
        check_output_file(suite.quality_out, "--quality-out")
    if suite.dry_run and (saved_run(suite.out) or {}).get("dry_run") is False:
        raise OutputError(17, f"--out {suite.out} holds a GPU run's results; a dry run does not replace them. "
                              "Choose another --out.")


def run_part(suite: Suite, part: str, results: Results, started: float) -> None:
    """One part against its share of the budget; its result (or its error) goes to the files at once."""
    selected = [p for p in PARTS if p in suite.args.parts]
    left = 60.0 * suite.args.budget_minutes - (time.perf_counter() - started)
    seconds = part_seconds(part, left, selected[selected.index(part) + 1:], suite.args.fid_minutes)
    number = PARTS.index(part) + 1
    print(f"\n== {number}. {TITLES[part]} (up to {seconds:.0f} s of the {max(0.0, left):.0f} s left)", flush=True)
    stamp = {"device": describe_device(suite.device), "budget_s": round(seconds), "started_at": now_utc()}
    results.record(part, {"status": "started (a run cut off here did not finish it)", **stamp})
    part_started = time.perf_counter()
    try:
        result = PART_FUNCTIONS[part](suite, time.perf_counter() + seconds)
        result.setdefault("status", "done")
    except Exception as err:     # one part's failure must not cost the others their GPU minutes
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    results.record(part, {**result, **stamp, "seconds": time.perf_counter() - part_started})


def _stop_on_sigterm():
    """SIGTERM (a machine's time limit) as Ctrl-C, so that the part under way is recorded and its subprocess stopped."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, handler)
    return None


def run_header(suite: Suite, argv: list[str] | None) -> dict:
    """What the JSON says about the run before its parts: the command, the machine, the software."""
    given = sys.argv[1:] if argv is None else argv
    return {"suite": SUITE, "dry_run": suite.dry_run, "command": " ".join(["python", SUITE, *map(str, given)]),
            "device": describe_device(suite.device),
            "gpu": torch.cuda.get_device_name(suite.device) if suite.device.type == "cuda" else None,
            "torch": torch.__version__, "cuda": torch.version.cuda, "diffusers": diffusers_version(),
            "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
            "machine": machine_header("", suite.device, Sizes(suite.scale.name, 0, 0, 0, "none")).splitlines()[1:6],
            "started_at": now_utc(), "budget_minutes": suite.args.budget_minutes, "parts_selected": list(suite.args.parts)}


def run_parts(suite: Suite, results: Results, started: float) -> int:
    """The selected parts in order; 130 if interrupted (SIGTERM too), 1 if a part failed."""
    previous = _stop_on_sigterm()
    part = None
    try:
        for part in (p for p in PARTS if p in suite.args.parts):
            run_part(suite, part, results, started)
    except KeyboardInterrupt:
        if part is not None:
            results.record(part, {**results.parts.get(part, {}), "status": "interrupted"})
        print(f"interrupted during part {part}; {suite.out} holds the parts finished before it", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed = [p for p in suite.args.parts if results.parts[p]["status"] == "failed"]
    print(f"\nwrote {relative(suite.out)} and {relative(suite.out.with_suffix('.md'))}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    name = args.device or ("cpu" if args.dry_run else "cuda")
    if not args.dry_run and (not name.startswith("cuda") or not torch.cuda.is_available()):
        print(f"error: the GPU suite measures a CUDA GPU, and --device {name} is not one here"
              f"{'' if torch.cuda.is_available() else ' (CUDA is not available)'}; pass --dry-run to check every "
              "part on the CPU at toy sizes", file=sys.stderr)
        return 2
    try:
        suite = make_suite(args, pick_device(name))
        check_outputs(suite)
    except OutputError as err:
        print(f"error: {err.strerror or err}", file=sys.stderr)
        return 2
    except ValueError as err:                    # a --device that is not one
        print(f"error: {err}", file=sys.stderr)
        return 2
    scale = suite.scale
    print(machine_header("GPU suite: every GPU-only figure of the README", suite.device,
                         Sizes(scale.name, scale.warmup, scale.repeats, scale.iters, "none" if suite.dry_run else "both"),
                         timing=f"training: {scale.warmup} warm-up step(s), then the median of {scale.repeats} "
                                f"interleaved block(s) of {scale.iters} step(s); sampling: 1 warm-up run, then the "
                                f"median of {scale.sample_repeats}; budget {args.budget_minutes:g} min"))
    if suite.dry_run:
        print("DRY RUN: the CPU, toy sizes, no torch.compile; these numbers are not GPU measurements")
    try:
        if {"train", "fid", "quality"} & set(args.parts):   # missing data stops the run here, not in part 1
            suite.images = load_dataset("fashion_mnist", args.data_root, train=True).images
    except DatasetNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = Results(suite.out, run_header(suite, argv), earlier_parts(suite.out, suite.dry_run, args.parts))
    return run_parts(suite, results, started)


if __name__ == "__main__":
    sys.exit(main())
