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
Then the number a learner cares about: 64 images with DDIM-50 from the shipped checkpoint, on
2 threads, with ``ddpm_teach.samplers.sample`` as the notebooks call it (target ≤ 30 s).

Last, what makes the package's own sampling faster (issue 17): each row samples the same images
from the same noise in a fresh process, so that the memory allocator can differ (it is chosen when
a process starts):

* the allocator: glibc's malloc as is (the baseline), glibc with tunables that keep freed memory
  (``GLIBC_TUNABLES``), jemalloc with its decay turned off, and tcmalloc (Debian's
  ``libjemalloc2`` / ``libtcmalloc-minimal4`` through ``LD_PRELOAD``; a row whose library is
  missing says so);
* with tcmalloc: ``torch.inference_mode`` instead of ``no_grad``, ``torch.compile`` of the network,
  channels_last, and other batch sizes (``sample()`` runs the network on at most
  ``ddpm_teach.samplers.CPU_NETWORK_CHUNK`` = 64 images at a time on a CPU, so a batch above 64
  differs from 64 only in the sampler's own arithmetic).

Every row's images are compared with the baseline's (max |diff|) and scored with classifier-FID;
one more row samples the baseline from other noise (``seed + 1``), and its distance from the
baseline's FID is a rough yardstick (one draw of sampling noise, not a spread): torch.compile and
channels_last change the rounding, so their images are not bit-equal, and an FID that moves by
much more than that would show a real change.
The baseline and the package's default (``python -m ddpm_teach evaluate``, which restarts itself
with tcmalloc, see ``ddpm_teach.allocator``) are also run end to end with classifier-FID at
``--fid-n`` images.  Precision: ``auto`` (bf16 where the CPU has it natively, fp32 elsewhere).

    python benchmarks/sample_throughput.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn

from benchmarks.common import (COURSE_UNET, Timer, add_size_arguments, machine_header, measure, print_table,
                               resolve_device, sizes_from_args)
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.devices import cpu_has_native_bf16
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
                        help="CPU threads for the shipped-checkpoint timing and the speed-up rows (default: 2)")
    parser.add_argument("--speedups-only", action="store_true",
                        help="only the last part: the allocator, inference_mode, compile, channels_last and batch rows")
    parser.add_argument("--fid-n", type=int, default=None,
                        help="images of the end-to-end FID check of the speed-ups (default 1000; 256 with --quick; 0: skip)")
    args = parser.parse_args(argv)
    sizes = sizes_from_args(args)
    device = resolve_device(args.device, args.threads)
    smoke = sizes.name == "smoke"
    batch = args.batch or (4 if smoke else 256 if device.type == "cuda" else 64)
    steps = args.steps or (5 if smoke else 50)
    if args.speedups_only:
        print(machine_header("faster sampling on the CPU", device, sizes, timing="one fresh process per row, "
                             "warm-up excluded"))
        speedups(args.checkpoint, sizes.name, args.checkpoint_threads, args.seed, args.fid_n)
        return 0

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
    if device.type == "cpu" and cpu_has_native_bf16():  # bf16 on AMX / AVX-512-BF16 (emulated, far slower, elsewhere)
        variants.append(("bf16 autocast", Autocast(model, torch.bfloat16)))
    elif device.type == "cpu":
        x, t = torch.randn(n, 1, 28, 28), torch.full((n,), 500)
        with torch.no_grad():
            fp32 = measure(lambda: model(x, t), device, 1, 2, threads=threads).median
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16 = measure(lambda: model(x, t), device, 1, 2, threads=threads).median
        print(f"\nno bf16 row: this CPU has no native bf16 (AMX / AVX-512-BF16), so bf16 autocast is emulated: one "
              f"forward pass of {n} images takes {1000 * bf16:.0f} ms in bf16 against {1000 * fp32:.0f} ms in fp32 "
              f"(ratio bf16/fp32 time: {bf16 / fp32:.1f}); precision 'auto' samples in fp32 here")
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
    if device.type == "cpu":
        speedups(args.checkpoint, sizes.name, args.checkpoint_threads, args.seed, args.fid_n)
    return 0


# ----------------------------------------------------------------------------------------------
# faster sampling on the CPU: one fresh process per row
# ----------------------------------------------------------------------------------------------

SPEEDUP_SIZES = {"smoke": (4, 4, 2, 0), "quick": (128, 64, 50, 256), "full": (256, 256, 50, 1000)}  # n, batch, steps, FID n


def _allocator_env(name: str) -> dict | None:
    """The environment of a row with allocator ``name`` (``ddpm_teach.allocator.ALLOCATORS``), or
    None if its library is missing.  A ``python -m ddpm_teach`` child keeps this allocator."""
    from ddpm_teach.allocator import allocator_settings, without_allocator_settings

    settings = allocator_settings(name)
    return None if settings is None else {**without_allocator_settings(os.environ), "DDPM_TEACH_ALLOCATOR": "system",
                                          **settings}


def _child(spec: dict) -> None:
    """One row, in its own process: sample, time, and save the images for the comparison."""
    import resource

    torch.set_num_threads(spec["threads"])
    model, schedule, _ = load_diffusion_model(spec["checkpoint"])
    if spec["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    net = model
    if spec["compile"]:
        compiled = torch.compile(model)

        class Compiled(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner, self.config = model, model.config

            def forward(self, x, t, labels=None):
                return compiled(x, t, labels)
        net = Compiled()
    context = torch.inference_mode if spec["inference_mode"] else torch.no_grad
    sampler = DDIMSampler(schedule, steps=spec["steps"], eta=0.0)

    def run(n: int, seed: int) -> torch.Tensor:
        g, out = torch.Generator().manual_seed(seed), []
        with context():
            for begin in range(0, n, spec["batch"]):
                out.append(sample(net, sampler, min(spec["batch"], n - begin), generator=g, progress=False,
                                  precision=spec["precision"]))
        return torch.cat(out)

    warm_started = time.perf_counter()
    run(min(spec["batch"], spec["n"]), spec["seed"] + 1)             # warm-up (and torch.compile's compile)
    warmup = time.perf_counter() - warm_started
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    images = run(spec["n"], spec["seed"])
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    torch.save(images, spec["out"])
    print(json.dumps({"seconds": seconds, "warmup": warmup, "user": after.ru_utime - before.ru_utime,
                      "system": after.ru_stime - before.ru_stime, "minflt": after.ru_minflt - before.ru_minflt}))


def _run_child(spec: dict, env: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"row {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _evaluate_end_to_end(checkpoint: Path, n: int, seed: int, threads: int, env: dict) -> dict:
    """``python -m ddpm_teach evaluate`` (DDIM-50, --precision auto) in ``env``: wall seconds and FID."""
    command = [sys.executable, "-m", "ddpm_teach", "evaluate", "--checkpoint", str(checkpoint), "--steps", "50",
               "--n", str(n), "--precision", "auto", "--seed", str(seed)]
    env = {**env, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    import re

    found = re.search(r"classifier-FID=([0-9.]+)", done.stdout)
    if not found:
        raise RuntimeError(f"no classifier-FID in the output of {' '.join(command)}:\n{done.stdout[-2000:]}")
    fid = float(found.group(1))
    return {"seconds": seconds, "fid": fid, "stdout": done.stdout}


NOISE_ROW = "baseline from other noise (seed + 1; not a speed-up)"


def _score_rows(samples: dict[str, torch.Tensor]) -> dict[str, float]:
    """Classifier-FID of each row's images: a row that changes arithmetic (compile, channels_last,
    bf16 rounding) is checked against the baseline, with the NOISE_ROW's distance as the yardstick."""
    from ddpm_teach.evaluation import Evaluator

    if not samples or min(len(v) for v in samples.values()) < 2:
        return {}
    evaluator = Evaluator.load()
    return {label: float(evaluator.score(images)["fid"]) for label, images in samples.items()}


def speedups(checkpoint: Path, size: str, threads: int, seed: int, fid_n: int | None = None) -> None:
    n, batch, steps, default_fid_n = SPEEDUP_SIZES[size]
    fid_n = default_fid_n if fid_n is None else fid_n
    rows_spec = [("glibc malloc (baseline)", "glibc", {}), ("glibc tunables", "glibc tunables", {}),
                 ("jemalloc, no decay", "jemalloc", {}), ("tcmalloc", "tcmalloc", {}),
                 ("tcmalloc + inference_mode", "tcmalloc", {"inference_mode": True}),
                 ("tcmalloc + channels_last", "tcmalloc", {"channels_last": True})]
    if size != "smoke":            # (torch.compile's compile alone takes about a minute)
        rows_spec += [("tcmalloc + torch.compile", "tcmalloc", {"compile": True})]
        rows_spec += [(f"tcmalloc, batch {b}", "tcmalloc", {"batch": b}) for b in (16, 64 if batch != 64 else 128)]
    rows_spec += [(NOISE_ROW, "glibc", {"seed": seed + 1})]        # the FID check's yardstick, not a speed-up
    print(f"\nfaster sampling: DDIM-{steps} of {n} images from {checkpoint.name}, precision auto, {threads} threads, "
          f"batch {batch} unless said; each row a fresh process (warm-up excluded), the same noise")
    rows, baseline, samples = [], None, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, allocator, extra in rows_spec:
            env = _allocator_env(allocator)
            if env is None:
                rows.append({"row": label, "s": "library not installed"})
                continue
            spec = {"checkpoint": str(checkpoint), "n": n, "batch": batch, "steps": steps, "precision": "auto",
                    "threads": threads, "seed": seed, "compile": False, "channels_last": False,
                    "inference_mode": False, "out": str(Path(tmp) / f"{len(rows)}.pt"), **extra}
            r = _run_child(spec, env)
            images = torch.load(spec["out"], weights_only=True)
            baseline = baseline if baseline is not None else (r, images)
            samples[label] = images
            if label == NOISE_ROW:                         # other images: no speed or difference to compare
                rows.append({"row": label})
                continue
            rows.append({"row": label, "s": f"{r['seconds']:.1f}", "img/s": f"{n / r['seconds']:.2f}",
                         "vs baseline": f"{baseline[0]['seconds'] / r['seconds']:.2f}x",
                         "user s": f"{r['user']:.1f}", "system s": f"{r['system']:.1f}",
                         "minor faults": f"{r['minflt'] / 1e6:.2f}M", "warm-up s": f"{r['warmup']:.1f}",
                         "max |diff| vs baseline": f"{(images - baseline[1]).abs().max().item():.1e}"})
            print(f"  {label}: {r['seconds']:.1f} s", flush=True)
    scores = _score_rows(samples)
    for row in rows:
        if row["row"] in scores:
            row["classifier-FID"] = f"{scores[row['row']]:.3f}"
    print_table(rows)
    base_label = rows_spec[0][0]
    if base_label in scores and NOISE_ROW in scores:
        noise = abs(scores[NOISE_ROW] - scores[base_label])
        changed = [label for label, fid in scores.items() if label != NOISE_ROW and abs(fid - scores[base_label]) > noise]
        print(f"FID check at N={n}: the baseline from other noise moves its FID by {noise:.3f} (sampling noise); "
              + (f"rows further from the baseline than that: {', '.join(changed)}" if changed
                 else "every speed-up row is within that of the baseline"))
    if fid_n:
        print(f"\nend to end, `python -m ddpm_teach evaluate --steps 50 --n {fid_n} --precision auto`, {threads} threads:")
        before = _evaluate_end_to_end(checkpoint, fid_n, seed, threads, _allocator_env("glibc"))
        from ddpm_teach.allocator import without_allocator_settings

        default_env = without_allocator_settings(os.environ)
        after = _evaluate_end_to_end(checkpoint, fid_n, seed, threads, default_env)
        print_table([{"run": "DDPM_TEACH_ALLOCATOR=system (glibc malloc, as before)", "s": f"{before['seconds']:.1f}",
                      "classifier-FID": f"{before['fid']:.3f}"},
                     {"run": "the package's default (tcmalloc when installed)", "s": f"{after['seconds']:.1f}",
                      "classifier-FID": f"{after['fid']:.3f}"}])
        print(f"ratio sample speed-up, package default / glibc, DDIM-50 of {fid_n}: {before['seconds'] / after['seconds']:.2f} "
              f"(FID {before['fid']:.3f} -> {after['fid']:.3f})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(json.loads(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
