"""Sampling throughput: ddpm_teach's DDIM sampler against diffusers' ``DDIMScheduler``.

Both samplers drive THE SAME network (our UNet, loaded from the shipped checkpoint) from the
same x_T, with DDIM-50, η=0 and x̂_0 clipped to [-1, 1]; diffusers' scheduler gets the same
linear betas (1e-4 to 0.02, T=1000).  Two settings matter for the outputs to agree:

* timestep spacing: ours defaults to "uniform" (999, 979, ..., 0, improved-diffusion's
  spacing), diffusers' DDIM to "leading" (980, 960, ..., 0).  Diffusers' "linspace" has our
  uniform timesteps but still steps to t − T/steps, so it is not our uniform.  The timed pair
  therefore runs ours with ``spacing="leading"``, diffusers' own default.
* after clipping x̂_0, ours re-derives ε from it (DDIM eq. 12 with the clipped x̂_0, as
  improved-diffusion and GLIDE do); diffusers does that with ``use_clipped_model_output=True``.

The agreement table shows the maximum difference for the matched pair and for the near misses.
Last, the number a learner cares about: 64 images with DDIM-50 from the shipped checkpoint, on
2 threads, with ``ddpm_teach.samplers.sample`` as the notebooks call it (target ≤ 30 s).

    python benchmarks/sample_throughput.py --quick
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn

from benchmarks.common import (COURSE_UNET, Timer, add_size_arguments, machine_header, measure, print_table,
                               resolve_device, sizes_from_args)
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.unet import UNet

__all__ = ["diffusers_scheduler", "diffusers_ddim", "main"]

RATIO_LINE = "ratio ours/diffusers sample img/s: {:.2f}"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "fashion_mnist_ddpm.pt"
TARGET_SECONDS = 30.0


class DiffusersStyle(nn.Module):
    """Our UNet called the diffusers way: ``unet(sample, timestep).sample``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(sample=self.model(sample, timestep))


class Autocast(nn.Module):
    """Our UNet under ``torch.autocast`` (the output cast back to fp32 for the sampler);
    it keeps ``.config``, so :func:`ddpm_teach.samplers.sample` takes it as it is."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype, self.config = model, dtype, model.config

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x, t, labels).float()


def diffusers_scheduler(schedule: NoiseSchedule, spacing: str = "leading"):
    """diffusers' DDIMScheduler with our betas: linear 1e-4..0.02 (or the exact betas of another kind)."""
    from diffusers import DDIMScheduler

    if schedule.name == "linear":
        betas = {"beta_schedule": "linear", "beta_start": float(schedule.betas[0]), "beta_end": float(schedule.betas[-1])}
    else:
        betas = {"trained_betas": schedule.betas.float().numpy()}
    return DDIMScheduler(num_train_timesteps=schedule.T, clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True,
                         steps_offset=0, prediction_type="epsilon", timestep_spacing=spacing, **betas)


@torch.no_grad()
def diffusers_ddim(unet: nn.Module, scheduler, x_T: torch.Tensor, steps: int,
                   use_clipped_model_output: bool = True) -> torch.Tensor:
    """The denoising loop of diffusers' DDIMPipeline, η=0: x_T → x_0."""
    scheduler.set_timesteps(steps, device=x_T.device)
    x = x_T
    for t in scheduler.timesteps:
        eps = unet(x, t.expand(x.shape[0])).sample
        x = scheduler.step(eps, t, x, eta=0.0, use_clipped_model_output=use_clipped_model_output).prev_sample
    return x


def load_model(path: Path, device: torch.device, seed: int) -> tuple[nn.Module, NoiseSchedule, str]:
    """The shipped checkpoint's UNet, or (if it is missing) the course UNet with random weights."""
    if path.is_file():
        model, schedule, ckpt = load_diffusion_model(path, device=device)
        return model, schedule, f"{path.name} (step {ckpt.get('step', '?')}, EMA weights)"
    torch.manual_seed(seed)
    model = UNet(COURSE_UNET)
    with torch.no_grad():  # the zero-initialised convs would make ε̂ = 0: give them small random values
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0.0, 0.05)
    return model.to(device).eval(), NoiseSchedule.from_name("linear", 1000), f"random weights ({path} is missing)"


def _steps_text(timesteps) -> str:
    ts = [int(t) for t in timesteps]
    return f"{ts[0]}, {ts[1]}, {ts[2]}, ..., {ts[-1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser)
    parser.add_argument("--batch", type=int, default=None,
                        help="images per sampling run (default: 64 on CPU, 256 on GPU, 4 with --smoke)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: 50; 5 with --smoke)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--checkpoint-threads", type=int, default=2,
                        help="CPU threads for the shipped-checkpoint timing (default: 2)")
    args = parser.parse_args(argv)
    sizes = sizes_from_args(args)
    device = resolve_device(args.device, args.threads)
    smoke = sizes.name == "smoke"
    batch = args.batch or (4 if smoke else 256 if device.type == "cuda" else 64)
    steps = args.steps or (5 if smoke else 50)

    print(machine_header("sampling throughput: ddpm_teach DDIMSampler vs diffusers DDIMScheduler", device, sizes,
                         timing=f"2 warm-up forward passes, then the median of {sizes.repeats} whole sampling run(s) "
                                "per sampler, interleaved"))
    model, schedule, source = load_model(args.checkpoint, device, args.seed)
    print(f"model:    our UNet from {source}; both samplers call this same network")
    print(f"sampler:  DDIM-{steps}, eta=0, clip x0 to [-1, 1], linear betas {float(schedule.betas[0]):g}..{float(schedule.betas[-1]):g}, "
          f"T={schedule.T}; batch {batch}, the same x_T for both")

    generator = torch.Generator(device=device).manual_seed(args.seed)
    x_T = torch.randn((batch, 1, COURSE_UNET.image_size, COURSE_UNET.image_size), generator=generator, device=device)
    ours_sampler = DDIMSampler(schedule, steps=steps, eta=0.0, spacing="leading", clip_x0=True)
    theirs_scheduler = diffusers_scheduler(schedule, "leading")
    theirs_unet = DiffusersStyle(model)

    def run_ours(x=x_T):
        return sample(model, ours_sampler, x_T=x, progress=False)

    def run_theirs(x=x_T):
        return diffusers_ddim(theirs_unet, theirs_scheduler, x, steps)

    # -- the sampler alone: a stand-in network that returns a fixed ε̂ -------------------------
    fixed_eps = torch.randn(x_T.shape, generator=generator, device=device)

    class FixedOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.config, self.anchor = model.config, nn.Parameter(torch.zeros(1, device=device))

        def forward(self, x, t, labels=None):
            return fixed_eps

    fixed = FixedOutput()
    overhead = {"ours": measure(lambda: sample(fixed, ours_sampler, x_T=x_T, progress=False), device, 1, 3).median / steps,
                "diffusers": measure(lambda: diffusers_ddim(DiffusersStyle(fixed), theirs_scheduler, x_T, steps),
                                     device, 1, 3).median / steps}

    # -- the timed pair, interleaved ------------------------------------------------------------
    with torch.no_grad():  # warm-up: let oneDNN / cuDNN pick kernels for this batch
        for _ in range(2):
            model(x_T, torch.full((batch,), schedule.T - 1, device=device))
    outputs = {}
    timers = {"ours": Timer(lambda: outputs.__setitem__("ours", run_ours()), device),
              "diffusers": Timer(lambda: outputs.__setitem__("diffusers", run_theirs()), device)}
    for _ in range(sizes.repeats):
        for timer in timers.values():
            timer.block(1)
    rate = {name: batch / timer.median for name, timer in timers.items()}
    print(f"\nDDIM-{steps} sampling, batch {batch} (median of {sizes.repeats} run(s), interleaved; "
          f"CPU s: this process's CPU time, all threads)")
    print_table([{"sampler": label, "timesteps": _steps_text(ts), "s/run": f"{timers[name].median:.2f}",
                  "CPU s/run": f"{timers[name].cpu_median:.2f}", "img/s": f"{rate[name]:.1f}",
                  "sampler-only ms/step": f"{1000 * overhead[name]:.2f}"}
                 for name, label, ts in (("ours", "ddpm_teach DDIMSampler(spacing='leading') + sample()", ours_sampler.timesteps),
                                         ("diffusers", "diffusers DDIMScheduler (leading) + DDIMPipeline loop",
                                          theirs_scheduler.timesteps))])
    print("(sampler-only: the same loops around a network that returns a fixed ε̂, i.e. the scheduler's own cost)")
    print()
    print(RATIO_LINE.format(rate["ours"] / rate["diffusers"]))
    print(f"ratio ours/diffusers sample img/s by CPU time (steadier on a shared machine): "
          f"{timers['diffusers'].cpu_median / timers['ours'].cpu_median:.2f}")

    # -- do they agree? -----------------------------------------------------------------------
    few = x_T[:8]
    uniform = DDIMSampler(schedule, steps=steps, eta=0.0, spacing="uniform", clip_x0=True)
    linspace = diffusers_scheduler(schedule, "linspace")
    pairs = [
        ("ours leading  vs diffusers leading, use_clipped_model_output=True (timed pair)",
         outputs["ours"], outputs["diffusers"], batch),
        ("ours leading  vs diffusers leading, use_clipped_model_output=False (DDIMPipeline's default)",
         run_ours(few), diffusers_ddim(theirs_unet, theirs_scheduler, few, steps, use_clipped_model_output=False), len(few)),
        ("ours uniform (our default) vs diffusers linspace",
         sample(model, uniform, x_T=few, progress=False), diffusers_ddim(theirs_unet, linspace, few, steps), len(few)),
    ]
    print("\nagreement of the final samples (images in [-1, 1])")
    print_table([{"pair": label, "images": n, "max |diff|": f"{(a - b).abs().max().item():.2e}",
                  "mean |diff|": f"{(a - b).abs().mean().item():.2e}"} for label, a, b, n in pairs])
    print(f"timesteps: ours uniform {_steps_text(uniform.timesteps)}; diffusers linspace {_steps_text(linspace.timesteps)} "
          f"but it steps from t to t - {schedule.T // steps}")

    # -- the learner's number: 64 images from the shipped checkpoint on 2 threads ----------------
    n = 4 if smoke else 64
    repeats = 1 if sizes.name in ("smoke", "quick") else sizes.repeats
    threads = args.checkpoint_threads if device.type == "cpu" else None
    variants = [("fp32 eager", model)]
    if device.type == "cpu":  # bf16 on AMX / AVX-512-BF16 (channels_last measured slower here)
        variants.append(("bf16 autocast", Autocast(model, torch.bfloat16)))
    results, rows = {}, []
    for label, net in variants:
        def run(net=net, label=label):
            g = torch.Generator(device=device).manual_seed(args.seed)
            results[label] = sample(net, DDIMSampler(schedule, steps=steps), n, generator=g, progress=False)
        timer = measure(run, device, 0, repeats, threads=threads)
        rows.append({"network": label, "threads": threads or "-", "images": n, "s": f"{timer.median:.2f}",
                     "CPU s": f"{timer.cpu_median:.2f}", "img/s": f"{n / timer.median:.1f}",
                     "max |diff| vs fp32": f"{(results[label] - results['fp32 eager']).abs().max().item():.2e}"})
    print(f"\nDDIM-{steps} ({uniform.spacing} spacing, as the notebooks sample), {n} images from {source}, "
          f"ddpm_teach.samplers.sample (median of {repeats})")
    print_table(rows)
    fp32_seconds = float(rows[0]["s"])
    if smoke or steps != 50:
        print(f"target: DDIM-50 of 64 images <= {TARGET_SECONDS:.0f} s on 2 threads: not measured at this size")
    else:
        verdict = "met" if fp32_seconds <= TARGET_SECONDS else "NOT met"
        where = "the GPU" if threads is None else f"{threads} thread(s)"
        note = "" if threads in (None, 2) else " (the target is stated for 2 threads)"
        print(f"target: DDIM-50 of 64 images <= {TARGET_SECONDS:.0f} s on 2 threads: {verdict} on {where}{note} "
              f"({fp32_seconds:.1f} s wall in fp32 eager)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
