"""What the benchmarks share: sizes (``--smoke``, ``--quick``, full), the machine header,
timing (warm-up, then the median of repeats), the matched-parameter diffusers peer, FLOP
counts, MFU and plain-text tables.

Timing rule used everywhere: run the work ``warmup`` times untimed (that is where
``torch.compile`` compiles and oneDNN picks its kernels), then time ``repeats`` blocks and
report the *median* block, so one slow block (another process waking up) does not decide
the result.  On CUDA every timed block ends with ``torch.cuda.synchronize()``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ddpm_teach.devices import cpu_name, describe_device, pick_device
from ddpm_teach.unet import UNet, UNetConfig

__all__ = ["COURSE_UNET", "Sizes", "add_size_arguments", "sizes_from_args", "machine_header", "sync", "Timer",
           "measure", "diffusers_version", "build_peer", "PEER_LAYOUTS", "PeerAdapter", "num_parameters",
           "flops_per_image", "peak_tflops", "print_table", "autocast", "AMP_DTYPE_NAMES", "resolve_device",
           "shown_command", "save_sample_panels", "add_trained_comparison_arguments",
           "finish_trained_comparison_arguments", "run_training_command"]

# The course's small model (notebooks 04-08, the shipped checkpoints): ~1.1M parameters.
COURSE_UNET = UNetConfig(image_size=28, in_channels=1, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
                         attention_resolutions=(7,), dropout=0.0)


# ----------------------------------------------------------------------------------------------
# sizes and the command line
# ----------------------------------------------------------------------------------------------

@dataclass
class Sizes:
    """How much work one benchmark run does.  ``name`` is "smoke", "quick" or "full"."""

    name: str
    warmup: int        # untimed iterations (compilation happens here)
    repeats: int       # timed blocks; the median is reported
    iters: int         # iterations per timed block
    compile: str       # torch.compile rows: "none", "ours" (our fast path only) or "both" models;
                       # compiling takes a minute or more per row on a 2-core CPU


SIZES = {
    "smoke": Sizes("smoke", warmup=1, repeats=1, iters=1, compile="none"),
    "quick": Sizes("quick", warmup=2, repeats=3, iters=3, compile="ours"),
    "full": Sizes("full", warmup=3, repeats=5, iters=5, compile="both"),
}


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--quick / --smoke (default: full size), --device, --threads, --seed, --compile {none,ours,both}."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a few minutes on a 2-core CPU (torch.compile for our fast path only)")
    size.add_argument("--smoke", action="store_true", help="seconds: tiny batch, one iteration (for the tests)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, normally one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", choices=["none", "ours", "both"], default=None,
                        help="torch.compile rows: none, ours (our fast path), both models "
                             "(default: none with --smoke, ours with --quick, both at full size)")


def add_scoring_run_arguments(parser: argparse.ArgumentParser, quick: str, smoke: str) -> None:
    """The arguments of the benchmarks that train and then score samples (fast_path,
    precision_check): --quick / --smoke (with these helps), --n, --threads, --seed, --data-root."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=quick)
    size.add_argument("--smoke", action="store_true", help=smoke)
    parser.add_argument("--n", type=int, default=None, help="samples scored per model (default 1000; 256 with "
                                                             "--quick, 32 with --smoke)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="where Fashion-MNIST lives (found offline if installed)")


def samples_to_score(args: argparse.Namespace) -> int:
    """--n, or the size's default: 1000 at full size, 256 with --quick, 32 with --smoke."""
    return args.n if args.n is not None else (32 if args.smoke else 256 if args.quick else 1000)


def sizes_from_args(args: argparse.Namespace) -> Sizes:
    sizes = SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.compile is not None:
        sizes = Sizes(**{**sizes.__dict__, "compile": args.compile})
    return sizes


# ----------------------------------------------------------------------------------------------
# the machine
# ----------------------------------------------------------------------------------------------

def _cpu_features() -> str:
    """The CPU features that matter here: AVX-512, AMX (bf16 matrix tiles), as torch sees them."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    wanted = [flag for flag in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if flag in flags]
    return f"torch CPU capability {capability}" + (f"; flags {' '.join(wanted)}" if wanted else "")


def diffusers_version() -> str:
    try:
        import diffusers
        return diffusers.__version__
    except ImportError:
        return "not installed"


def machine_header(title: str, device: torch.device, sizes: Sizes, timing: str | None = None) -> str:
    """The lines every benchmark prints first: what ran, where, and how loaded the machine was."""
    lines = [f"== {title} ({sizes.name} size)", f"device:   {describe_device(device)}"]
    if device.type == "cuda":
        lines.append(f"GPU:      {torch.cuda.get_device_name(device)}")
    lines.append(f"CPU:      {cpu_name()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads")
    lines.append(f"          {_cpu_features()}")
    lines.append(f"software: torch {torch.__version__}, diffusers {diffusers_version()}, python {platform.python_version()}")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()
        lines.append(f"load:     {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min; above the core count "
                     "means other processes shared the CPU and the numbers are low)")
    lines.append("timing:   " + (timing or f"{sizes.warmup} warm-up iteration(s), then the median of {sizes.repeats} "
                                           f"block(s) of {sizes.iters} iteration(s)"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Timer:
    """Seconds of ``fn()`` repeated ``iters`` times, collected per block: ``warmup()`` once,
    then ``block()`` as often as wanted (several timers can be interleaved, so that a change
    in the machine's load falls on every configuration alike)."""

    def __init__(self, fn: Callable[[], object], device: torch.device, threads: int | None = None):
        self.fn, self.device, self.threads = fn, device, threads
        self.blocks: list[float] = []
        self.cpu_blocks: list[float] = []   # CPU seconds of this process (all its threads) per iteration
        self.warmup_seconds = 0.0

    @contextlib.contextmanager
    def _threads(self):
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def warmup(self, n: int) -> None:
        with self._threads():
            start = time.perf_counter()
            for _ in range(n):
                self.fn()
            sync(self.device)
            self.warmup_seconds += time.perf_counter() - start

    def block(self, iters: int) -> float:
        with self._threads():
            sync(self.device)
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(iters):
                self.fn()
            sync(self.device)
            seconds = (time.perf_counter() - start) / iters
            self.cpu_blocks.append((time.process_time() - cpu_start) / iters)
        self.blocks.append(seconds)
        return seconds

    @property
    def median(self) -> float:
        """Median wall seconds per iteration over the timed blocks."""
        return statistics.median(self.blocks)

    @property
    def cpu_median(self) -> float:
        """Median CPU seconds per iteration (summed over threads; spin-waiting included).  On a
        shared machine, wall ≫ CPU ÷ threads says the process waited for a core."""
        return statistics.median(self.cpu_blocks)


def measure(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int,
            threads: int | None = None) -> Timer:
    """``fn()`` run ``warmup`` times untimed, then ``repeats`` timed runs: read ``.median``
    (wall seconds) and ``.cpu_median`` (CPU seconds) from the returned :class:`Timer`."""
    timer = Timer(fn, device, threads)
    timer.warmup(warmup)
    for _ in range(repeats):
        timer.block(1)
    return timer


# ----------------------------------------------------------------------------------------------
# the diffusers peer at a matched parameter count
# ----------------------------------------------------------------------------------------------

def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


PEER_LAYOUTS = ("defaults", "matched")


def build_peer(config: UNetConfig, tolerance: float = 0.10, layout: str = "defaults"):
    """diffusers' ``UNet2DModel`` laid out like our UNet: the same levels (block_out_channels =
    base·mults), ResBlocks per level (layers_per_block), attention (``AttnDownBlock2D`` /
    ``AttnUpBlock2D``) at the same resolutions, plain ``DownBlock2D``/``UpBlock2D`` elsewhere, its
    mid-block (ResBlock, attention, ResBlock) and time embedding (4·base).

    layout="defaults": diffusers' own defaults for the rest, as the benchmarks in the README have
        measured it so far: 32 GroupNorm groups (at width 32, one channel per group), attention
        heads of size 8, PyTorch's initialisation.  Label results "library defaults".
    layout="matched": the rest matched to ours as well: GroupNorm groups = ``norm_groups``, heads of
        our size (``num_heads`` per attention layer), and our zero initialisation of each ResBlock's
        second conv, each attention output projection and the output conv.  The two networks then
        compute the same function from the same weights (tests/test_peer.py copies ours into it).
    Raises if the parameter counts differ by more than ``tolerance``."""
    from diffusers import UNet2DModel

    if layout not in PEER_LAYOUTS:
        raise ValueError(f"layout must be one of {PEER_LAYOUTS}, got {layout!r}.")
    down, up = [], []
    for res in config.resolutions:
        attention = res in config.attention_resolutions
        down.append("AttnDownBlock2D" if attention else "DownBlock2D")
        up.insert(0, "AttnUpBlock2D" if attention else "UpBlock2D")
    widths = tuple(config.base_channels * m for m in config.channel_mults)
    matched = {}
    if layout == "matched":
        if config.block != "resnet" or config.resblock_updown:
            raise ValueError("the matched diffusers peer exists for block='resnet' without resblock_updown only.")
        attended = {w for w, r in zip(widths, config.resolutions) if r in config.attention_resolutions} | {widths[-1]}
        head_sizes = {w // config.num_heads for w in attended}
        if len(head_sizes) != 1:
            raise ValueError(f"diffusers has one attention head size per model; with {config.num_heads} heads ours has "
                             f"{sorted(head_sizes)} at the attended widths {sorted(attended)}.")
        matched = {"norm_num_groups": config.norm_groups, "attention_head_dim": head_sizes.pop()}
    peer = UNet2DModel(
        sample_size=config.image_size, in_channels=config.in_channels, out_channels=config.out_channels,
        block_out_channels=widths, layers_per_block=config.num_res_blocks, down_block_types=tuple(down),
        up_block_types=tuple(up), dropout=config.dropout, **matched,
    )
    if layout == "matched":
        with torch.no_grad():
            for name, module in peer.named_modules():
                if name.endswith(".conv2") or name.endswith(".to_out.0") or name == "conv_out":
                    module.weight.zero_()
                    module.bias.zero_()
    ours, theirs = num_parameters(UNet(config)), num_parameters(peer)
    if abs(theirs - ours) > tolerance * ours:
        raise ValueError(f"the diffusers peer has {theirs:,} parameters, ours {ours:,}: not within ±{tolerance:.0%}.")
    return peer


class PeerAdapter(nn.Module):
    """``peer(x_t, t)`` → ε̂ as a plain tensor, like our UNet (diffusers returns ``.sample``)."""

    def __init__(self, peer: nn.Module):
        super().__init__()
        self.peer = peer

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        return self.peer(x, t).sample


# ----------------------------------------------------------------------------------------------
# precision, FLOPs, MFU
# ----------------------------------------------------------------------------------------------

AMP_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` (bf16 on CPU uses AMX/AVX-512-BF16 where the CPU has
    them), or a no-op for plain fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def flops_per_image(model: nn.Module, config: UNetConfig, device: torch.device, batch: int = 2) -> tuple[float, float]:
    """(forward, forward+backward) FLOPs per image, counted by ``FlopCounterMode`` on one batch
    (multiply-add = 2 FLOPs; convolutions, matmuls and attention are counted, element-wise ops not)."""
    x = torch.randn(batch, config.in_channels, config.image_size, config.image_size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x, t)
    forward = counter.get_total_flops() / batch
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, t).float().pow(2).mean().backward()
    model.zero_grad(set_to_none=True)
    del out
    return forward, counter.get_total_flops() / batch


# Dense (no sparsity) peak tensor-core TFLOP/s in bf16 (fp16 for the T4, which has no bf16).
PEAK_TFLOPS = [
    (r"H100.*PCIe", 756.0),
    (r"H100|H200|GH200", 989.0),
    (r"A100", 312.0),
    (r"\bL4\b", 121.0),
    (r"\bT4\b", 65.0),
]


def peak_tflops(device: torch.device) -> float | None:
    """The device's peak bf16 TFLOP/s from the table above, or None ("unknown peak")."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for pattern, peak in PEAK_TFLOPS if re.search(pattern, name)), None)


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------

def print_table(rows: list[dict], columns: list[str] | None = None) -> None:
    """A plain-text table, left-aligned text and right-aligned numbers."""
    if not rows:
        return
    columns = columns or list(rows[0])
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r[i]) for r in cells) for i in range(len(columns))]

    def fmt(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    print(fmt(columns))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(fmt(r))


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("x%"))
        return True
    except ValueError:
        return text in ("", "-")


def resolve_device(name: str, threads: int | None) -> torch.device:
    if threads:
        torch.set_num_threads(threads)
    return pick_device(name)


# ----------------------------------------------------------------------------------------------
# the benchmarks that train through the command line (latent_vs_pixel, blocks)
# ----------------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent


def add_trained_comparison_arguments(parser: argparse.ArgumentParser, each: str) -> None:
    """The arguments shared by the benchmarks that train each of several models (``each``: "side",
    "variant") for a time budget and then sample and score them: --minutes, --n, --sample-steps,
    --batch-size, --precision, --resume, --seed, --sample-seed, --extra-train-flags, --verbose."""
    parser.add_argument("--minutes", type=float, default=None, help=f"training budget per {each} (default 15; --quick 1)")
    parser.add_argument("--n", type=int, default=None, help=f"samples scored per {each} (default 1000; --quick 200)")
    parser.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--batch-size", type=int, default=500, help="sampling batch")
    parser.add_argument("--precision", default=None, help="sampling precision (default: bf16 where native, else fp32)")
    parser.add_argument("--resume", action="store_true", help="keep training runs finished with the same command")
    parser.add_argument("--seed", type=int, default=0, help="training seed (and sampling seed unless --sample-seed)")
    parser.add_argument("--sample-seed", type=int, default=None,
                        help="another sampling seed for the same trained models (with --resume: the seed spread)")
    parser.add_argument("--extra-train-flags", nargs=argparse.REMAINDER, default=[],
                        help=f"more `train` flags for every {each} (last on the line; the tests shrink the models)")
    parser.add_argument("--verbose", action="store_true", help="show the training commands' progress bars")


def finish_trained_comparison_arguments(args: argparse.Namespace) -> None:
    """The size-dependent defaults of those arguments: 15 minutes and N=1000 (--quick: 1 and 200),
    bf16 sampling where the CPU or GPU has it natively, else fp32."""
    from ddpm_teach.devices import native_precision

    args.minutes = args.minutes or (1.0 if args.quick else 15.0)
    args.n = args.n or (200 if args.quick else 1000)
    args.precision = args.precision or native_precision()


def run_training_command(command: list[str], info_path: Path, log: Path, verbose: bool = False) -> dict:
    """Run a `python -m ddpm_teach train` command from the repository root, its output in ``log``
    (on the terminal with ``verbose``), and write ``{"command", "wall_s"}`` to ``info_path`` once it
    has finished: a run interrupted or failed is never taken for a finished one by --resume."""
    print(f"{shown_command(command)}", flush=True)
    info_path.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w") as stream:
        done = subprocess.run(command, cwd=REPO_ROOT, stdout=None if verbose else stream,
                              stderr=None if verbose else stream)
    if done.returncode:
        raise SystemExit(f"training failed (exit code {done.returncode}); its output is in {log}")
    info = {"command": shown_command(command), "wall_s": round(time.perf_counter() - started, 1)}
    info_path.write_text(json.dumps(info))
    return info


def shown_command(command: list[str]) -> str:
    """A `python -m ddpm_teach ...` command as the README shows it: `python` for the interpreter,
    and paths inside the repository relative to its root."""
    def relative(arg: str) -> str:
        try:
            return str(Path(arg).relative_to(REPO_ROOT)) if Path(arg).is_absolute() else arg
        except ValueError:
            return arg
    return " ".join(shlex.quote(relative(c)) for c in ["python", *command[1:]])


def save_sample_panels(panels: dict[str, torch.Tensor], path: Path, nrow: int, height: float = 3.6) -> Path:
    """One grid of images [N, 1, H, W] in [-1, 1] per titled panel, side by side, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddpm_teach.plotting import make_grid

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), height), layout="constrained")
    for ax, (name, x) in zip(axes, panels.items()):
        ax.imshow(make_grid(x, nrow=nrow).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name)
        ax.axis("off")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
