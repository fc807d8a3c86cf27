"""Training throughput: ddpm_teach's UNet against diffusers' ``UNet2DModel`` at a matched size.

The peer ("diffusers" below) is ``common.build_peer(COURSE_UNET, layout="matched")``: our levels,
blocks, attention placement, GroupNorm groups, heads and initialisation in diffusers' code, the same
parameter count.  One more row, fp32 eager, is diffusers' library defaults at our widths (32 GroupNorm
groups, heads of size 8, PyTorch's initialisation), labelled so.

Both models are the course's small configuration (``COURSE_UNET``: base 32, mults 1-2-2, one
ResBlock per level, attention at 7×7; ~1.1M parameters) on real 28×28 Fashion-MNIST batches,
and both go through the *same* loop, DDPM Algorithm 1::

    x_0 from the data, t ~ U{0..T−1}, ε ~ N(0, I)        (one seeded generator per row)
    x_t = q_sample(x_0, t, ε)                             (eq. 4)
    loss = ‖ε − model(x_t, t)‖²,  backward,  AdamW step   (eq. 14)

Each model is measured in the configurations a user would pick: plain fp32 eager, bf16
autocast (AMX/AVX-512-BF16 on a recent Xeon), channels_last, both, and torch.compile (our fast
path only with ``--quick``; both models at full size).  The headline ratio is our fastest
configuration against diffusers' plain fp32 eager at the same batch; the like-for-like ratios
(fp32 eager vs fp32 eager, fastest vs fastest) are printed under it.  On CUDA the rows are fp32,
bf16 autocast (fp16 where bf16 is missing), channels_last and torch.compile, with fused AdamW
and the data on the GPU, and the table adds MFU.

    python benchmarks/train_throughput.py --quick      # a few minutes on 2 cores
    python benchmarks/train_throughput.py              # full size, torch.compile rows for both
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.nn.functional as F

from benchmarks.common import (AMP_DTYPE_NAMES, COURSE_UNET, PeerAdapter, Sizes, Timer, add_size_arguments, autocast,
                               build_peer, flops_per_image, machine_header, num_parameters, peak_tflops, print_table,
                               resolve_device, sizes_from_args)
from ddpm_teach.data import load_dataset, to_model_range
from ddpm_teach.devices import cpu_has_native_bf16
from ddpm_teach.forward import q_sample
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.unet import UNet

__all__ = ["RunConfig", "candidate_configs", "main"]

RATIO_LINE = "ratio ours/diffusers train img/s: {:.2f}"


@dataclass(frozen=True)
class RunConfig:
    """One row of the table: which model, and how it is run."""

    model: str                          # "ours", "diffusers" (matched layout) or "diffusers-defaults"
    amp: torch.dtype | None = None      # autocast dtype, None for fp32
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None          # None: the process's thread count
    math_sdpa: bool = False             # force torch's "math" attention kernel (a help for the peer, see below)

    @property
    def label(self) -> str:
        parts = [f"{AMP_DTYPE_NAMES[self.amp]} autocast" if self.amp else "fp32"]
        if self.channels_last:
            parts.append("channels_last")
        if self.math_sdpa:
            parts.append("math SDPA")
        parts.append("torch.compile" if self.compile else "eager")
        return " + ".join(parts)

    @property
    def is_baseline(self) -> bool:
        return self.amp is None and not self.channels_last and not self.compile and not self.math_sdpa

    def ddpm_teach_flags(self) -> str:
        """The same configuration as flags of ``python -m ddpm_teach train``."""
        flags = []
        if self.amp is not None:
            flags.append(f"--mixed-precision {AMP_DTYPE_NAMES[self.amp]}")
        if self.channels_last:
            flags.append("--channels-last")
        if self.compile:
            flags.append("--compile")
        if self.threads:
            flags.append(f"--threads {self.threads}")
        return " ".join(flags) or "(no extra flags)"


# Our compiled row: bf16 autocast + torch.compile where the CPU computes bf16 natively (the fastest
# on a Xeon with AMX), fp32 + torch.compile elsewhere (bf16 is emulated there, many times slower).
# The package no longer fixes it: --preset cpu-fast probes (ddpm_teach.setup_probe).
CPU_FAST_PATH = RunConfig("ours", torch.bfloat16 if cpu_has_native_bf16() else None, compile=True)
MODEL_LABELS = {"ours": "ours", "diffusers": "diffusers, matched layout",
                "diffusers-defaults": "diffusers, library defaults"}


def candidate_configs(device: torch.device, sizes: Sizes) -> list[RunConfig]:
    """The rows to measure: the same eager configurations for both models, then torch.compile
    rows (``sizes.compile``: none, our fast path only, or both models)."""
    both = ("ours", "diffusers")
    if device.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        eager = [RunConfig("", None), RunConfig("", amp), RunConfig("", amp, channels_last=True)]
        compiled = [RunConfig("", amp, compile=True)]
    elif device.type != "cpu":  # MPS: no bf16 autocast to rely on
        eager, compiled = [RunConfig("", None), RunConfig("", None, channels_last=True)], []
    elif sizes.name == "smoke":
        eager, compiled = [RunConfig("", None), RunConfig("", torch.bfloat16)], []
    elif cpu_has_native_bf16():
        eager = [RunConfig("", None), RunConfig("", torch.bfloat16), RunConfig("", None, channels_last=True),
                 RunConfig("", torch.bfloat16, channels_last=True)]
        compiled = [RunConfig("", None, compile=True), RunConfig("", torch.bfloat16, compile=True)]
    else:               # no native bf16: emulated bf16 rows would only show its large slow-down
        eager = [RunConfig("", None), RunConfig("", None, channels_last=True)]
        compiled = [RunConfig("", None, compile=True)]
    configs = [replace(shape, model=model) for model in both for shape in eager]
    configs.append(RunConfig("diffusers-defaults", None))      # the defaults at our widths, fp32 eager: one row
    if device.type == "cpu" and sizes.name != "smoke" and cpu_has_native_bf16():
        # diffusers' attention (head size 8) takes PyTorch's CPU flash-attention kernel, whose bf16
        # backward is slow; the math kernel (what our attention ends up in) helps it.  A courtesy row.
        configs.append(RunConfig("diffusers", torch.bfloat16, math_sdpa=True))
    if sizes.compile == "ours" and device.type == "cpu":
        configs.append(CPU_FAST_PATH)
    elif sizes.compile == "ours":
        configs += [replace(shape, model="ours") for shape in compiled]
    elif sizes.compile == "both":
        configs += [replace(shape, model=model) for model in both for shape in compiled]
    threads = torch.get_num_threads()
    if device.type == "cpu" and sizes.name == "full" and threads > 1:  # is one thread better here?
        configs.append(replace(CPU_FAST_PATH, threads=1))
    return configs


def build_model(name: str, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # the same initial weights for every row of one model
    model = (UNet(COURSE_UNET) if name == "ours" else
             PeerAdapter(build_peer(COURSE_UNET, layout="matched" if name == "diffusers" else "defaults")))
    return model.to(device).train()


class TrainLoop:
    """Algorithm 1 for one row: its own model, AdamW, generator and batch counter."""

    def __init__(self, config: RunConfig, images: torch.Tensor, order: torch.Tensor, batch: int,
                 schedule: NoiseSchedule, device: torch.device, seed: int):
        self.config, self.images, self.order, self.batch = config, images, order, batch
        self.schedule, self.device = schedule, device
        self.model = build_model(config.model, device, seed)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        fused = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-4, **fused)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.amp == torch.float16)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.k = 0
        self.last_loss = torch.tensor(float("nan"))

    def attention_kernel(self):
        if not self.config.math_sdpa:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.MATH)

    def step(self) -> None:
        start = (self.k * self.batch) % (len(self.order) - self.batch + 1)
        x0 = to_model_range(self.images[self.order[start:start + self.batch]])          # (B, 1, 28, 28) in [-1, 1]
        if self.config.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, self.schedule.T, (self.batch,), generator=self.generator, device=self.device)
        noise = torch.randn(x0.shape, generator=self.generator, device=self.device)
        x_t = q_sample(self.schedule, x0, t, noise)                                       # eq. 4
        with autocast(self.device, self.config.amp), self.attention_kernel():
            eps_pred = self.forward(x_t, t)
        loss = F.mse_loss(eps_pred.float(), noise)                                        # eq. 14
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_loss = loss.detach()
        self.k += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser)
    parser.add_argument("--batch", type=int, default=None,
                        help="images per step, the same for every row (default: 64 on CPU, 256 on GPU, 4 with --smoke)")
    parser.add_argument("--data-root", default=None, help="where Fashion-MNIST lives (found offline if installed)")
    args = parser.parse_args(argv)
    sizes = sizes_from_args(args)
    device = resolve_device(args.device, args.threads)
    batch = args.batch or (4 if sizes.name == "smoke" else 256 if device.type == "cuda" else 64)

    print(machine_header("training throughput: ddpm_teach UNet vs diffusers UNet2DModel", device, sizes))
    data = load_dataset("fashion_mnist", args.data_root, train=True)
    images = data.images[:max(4096, 4 * batch)].to(device)   # uint8 (N, 1, 28, 28), resident on the device
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed)).to(device)
    schedule = NoiseSchedule.from_name("linear", 1000)
    print(f"data:     Fashion-MNIST train, real 28x28x1 images (no padding: both UNets take 28 = 7·2²), "
          f"batch {batch}, the same batches, t and ε for every row")

    # -- what each model costs per image ---------------------------------------------------
    counts = {}
    for name in MODEL_LABELS:
        model = build_model(name, device, args.seed)
        forward, train = flops_per_image(model, COURSE_UNET, device)
        counts[name] = {"params": num_parameters(model), "fwd": forward, "train": train}
    print("\nmodel size and cost (FlopCounterMode; 1 multiply-add = 2 FLOPs)")
    print_table([{"model": MODEL_LABELS[name], "parameters": f"{c['params']:,}", "fwd MFLOP/img": f"{c['fwd'] / 1e6:.1f}",
                  "fwd+bwd MFLOP/img": f"{c['train'] / 1e6:.1f}", "fwd+bwd / fwd": f"{c['train'] / c['fwd']:.2f}"}
                 for name, c in counts.items()])
    ratio_params = counts["diffusers"]["params"] / counts["ours"]["params"]
    print(f"parameters: ours {counts['ours']['params']:,}, diffusers {counts['diffusers']['params']:,} "
          f"(diffusers/ours = {ratio_params:.3f}, within ±10%)")

    # -- time every configuration, interleaved ----------------------------------------------
    loops, timers = [], []
    for config in candidate_configs(device, sizes):
        loop = TrainLoop(config, images, order, batch, schedule, device, args.seed)
        timer = Timer(loop.step, device, threads=config.threads)
        print(f"warming up {config.model:9s} {config.label}{f', {config.threads} thread(s)' if config.threads else ''} ...",
              flush=True)
        timer.warmup(sizes.warmup)
        loops.append(loop)
        timers.append(timer)
    for _ in range(sizes.repeats):          # round-robin: a change in load hits every row alike
        for timer in timers:
            timer.block(sizes.iters)

    peak = peak_tflops(device)
    rows, rate = [], {}
    baseline = next(i for i, l in enumerate(loops) if l.config.model == "diffusers" and l.config.is_baseline)
    for loop, timer in zip(loops, timers):
        rate[loop.config] = batch / timer.median
    for loop, timer in zip(loops, timers):
        c = loop.config
        achieved = rate[c] * counts[c.model]["train"]                     # FLOP/s, fwd+bwd as counted
        row = {"model": MODEL_LABELS[c.model], "configuration": c.label, "threads": c.threads or torch.get_num_threads(),
               "img/s": f"{rate[c]:.1f}", "ms/step": f"{1000 * timer.median:.1f}",
               "CPU ms/step": f"{1000 * timer.cpu_median:.1f}",
               "vs diffusers fp32": f"{rate[c] / rate[loops[baseline].config]:.2f}x",
               "GFLOP/s": f"{achieved / 1e9:.1f}", "warm-up s": f"{timer.warmup_seconds:.1f}",
               "loss": f"{loop.last_loss.item():.3f}"}
        if device.type == "cuda":
            row["MFU"] = f"{100 * achieved / (peak * 1e12):.1f}%" if peak else "unknown peak"
        rows.append(row)
        if not math.isfinite(loop.last_loss.item()):
            raise FloatingPointError(f"{c.model} {c.label}: the loss is {loop.last_loss.item()}")
    print(f"\ntraining steps, batch {batch} (img/s and ms/step: wall clock, median block; CPU ms/step: this "
          "process's CPU time, all threads; GFLOP/s = img/s x fwd+bwd FLOPs/img)")
    print_table(rows)
    if device.type != "cuda":
        print("MFU: unknown peak (the peak table covers H100/H200/A100/L4/T4 GPUs)")

    # -- the ratios --------------------------------------------------------------------------
    def best(model: str) -> RunConfig:
        return max((l.config for l in loops if l.config.model == model), key=rate.get)

    def plain(model: str) -> RunConfig:
        return next(l.config for l in loops if l.config.model == model and l.config.is_baseline)

    ours_best, theirs_best = best("ours"), best("diffusers")
    print()
    print(RATIO_LINE.format(rate[ours_best] / rate[plain("diffusers")]))
    print(f"  = ours at its fastest ({ours_best.label}, {ours_best.threads or torch.get_num_threads()} threads) "
          f"/ diffusers fp32 eager, batch {batch}")
    cpu = {l.config: t.cpu_median for l, t in zip(loops, timers)}
    print(f"ratio ours/diffusers train img/s by CPU time (steadier on a shared machine): "
          f"{cpu[plain('diffusers')] / cpu[ours_best]:.2f}")
    print(f"ratio ours/diffusers train img/s, fp32 eager vs fp32 eager: {rate[plain('ours')] / rate[plain('diffusers')]:.2f}")
    print(f"ratio ours/diffusers-library-defaults train img/s, fp32 eager vs fp32 eager: "
          f"{rate[plain('ours')] / rate[plain('diffusers-defaults')]:.2f}")
    print(f"ratio ours/diffusers train img/s, each at its fastest ({ours_best.label} vs {theirs_best.label}): "
          f"{rate[ours_best] / rate[theirs_best]:.2f}")
    print(f"fastest configuration for ours here: {ours_best.label}; "
          f"in the package: python -m ddpm_teach train {ours_best.ddpm_teach_flags()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
