"""The CPU fast path against the diffusers peer: the same wall-clock budget, the same data, batch,
learning rate and schedule, then the same classifier-FID.

    python benchmarks/fast_path.py --quick     # 2 minutes of training each, N=256 (about 8 minutes in all)
    python benchmarks/fast_path.py --smoke     # seconds, for the tests: the numbers mean nothing
    python benchmarks/fast_path.py             # 15 minutes each, N=1000: the README's figures (about 45 minutes)

One after the other, each with the whole CPU (the same torch threads):

* **ours**: ``python -m ddpm_teach train --preset cpu-fast`` (``ddpm_teach.training.preset``):
  the 1.1M-parameter UNet, batch 64, lr 1e-3, EMA 0.995, the cosine fitted to the budget, and
  the setup its start-up probe picks (fp32 or bf16 autocast where native, channels_last,
  torch.compile: ``ddpm_teach.setup_probe``).  The probe and torch.compile's warm-up are paid
  out of the budget.  (The like-for-like comparison, with diffusers' network trained by our
  loop, is ``benchmarks/time_to_quality.py``.)
* **diffusers, library defaults**: ``UNet2DModel`` with our levels, blocks, attention placement and
  parameter count, and diffusers' defaults for the rest (``common.build_peer``, layout "defaults":
  32 GroupNorm groups, i.e. one channel per group at width 32; heads of size 8; PyTorch's
  initialisation), trained the way diffusers' ``train_unconditional.py`` example does on a CPU:
  ``DDPMScheduler`` (``add_noise``), AdamW, ``get_cosine_schedule_with_warmup`` (which decays to 0,
  where ours stops at 0.1× lr), gradient clipping at 1, and ``EMAModel`` (decay 0.995), in plain
  fp32 eager.  It gets the same learning rate, warm-up and batch, and its cosine is fitted to the
  budget the same way; its batches are a sliding window over one permutation of the data, so they
  match ours only in the first epoch.  Not like for like: see issue 17 and ``tests/test_peer.py``.

Then each samples N images with DDIM-50 in fp32 from its EMA weights, from the same seed, and
the shipped classifier scores them (ours also sampled in bf16 where the CPU has it natively): each model with its own library's sampler and defaults
(what its user gets: ``DDIMSampler`` for ours, ``DDIMScheduler`` as ``DDIMPipeline`` runs it for
diffusers), and each with the other library's sampler too, so that the networks can be compared
under one sampler and the samplers under one network.

"Recognisable" threshold: classifier-FID at most ``RECOGNISABLE_FID`` at N=1000 (README,
"Performance", says why).  Our model's samples are also scored when sampled in bf16, to show that
the speed-up does not cost quality.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (COURSE_UNET, Sizes, add_scoring_run_arguments, build_peer, machine_header,  # noqa: E402
                               num_parameters, samples_to_score)
from ddpm_teach.checkpoint import load_diffusion_model  # noqa: E402
from ddpm_teach.data import load_dataset  # noqa: E402
from ddpm_teach.devices import cpu_has_native_bf16  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.plotting import save_image_grid  # noqa: E402
from ddpm_teach.samplers import DDIMSampler, sample  # noqa: E402
from ddpm_teach.trainer import TimeBudget, Trainer  # noqa: E402
from ddpm_teach.training import TrainConfig, preset_configs  # noqa: E402
from ddpm_teach.unet import UNetConfig  # noqa: E402

RECOGNISABLE_FID = 20.0    # classifier-FID at N=1000 (see the README's "Performance" section)
SAMPLING_STEPS = 50
CALIBRATION = TimeBudget.CALIBRATION_STEPS


def fast_path_configs(minutes: float | None, out_dir: str, compile: bool = True,
                      probe: bool = True) -> tuple[TrainConfig, UNetConfig]:
    """The package's ``cpu-fast`` preset with this run's budget (None: no budget) and folder: with
    ``probe``, its start-up probe picks the setup (``Trainer.probe_fixed = {"compile": False}``
    keeps torch.compile out of it); without, bf16 where native and torch.compile if ``compile``."""
    config, model_config = preset_configs("cpu-fast", max_minutes=minutes, out_dir=out_dir, checkpoint_every=0)
    config.probe_setup = probe
    config.compile = compile and not probe
    return config, model_config


def setup_label(config: TrainConfig) -> str:
    """How a run computes: "bf16 autocast + torch.compile", "fp32 eager", ..."""
    return (("bf16 autocast" if config.mixed_precision == "bf16" else "fp32")
            + (" + torch.compile" if config.compile else " eager"))


def train_ours(data, minutes: float, out_dir: str, seed: int, compile: bool = True):
    config, model_config = fast_path_configs(minutes, out_dir, compile)
    config.seed = seed
    if model_config != COURSE_UNET:  # the peer is built from COURSE_UNET: keep the two the same
        raise RuntimeError(f"the cpu-fast preset's UNet {model_config} differs from COURSE_UNET {COURSE_UNET}.")
    started = time.perf_counter()
    trainer = Trainer(config, model_config, data=data, overwrite=True)   # a benchmark starts afresh
    # the smoke test's seconds go to training: nothing left to probe
    trainer.probe_fixed = {} if compile else {"mixed_precision": config.mixed_precision, "channels_last": False,
                                              "compile": False}
    trainer.probe_cache = False                     # the probe is paid in every run of the benchmark
    trainer.train(progress=True)
    seconds = time.perf_counter() - started
    model = copy.deepcopy(trainer.ema.module).eval()
    return model, trainer.schedule, {
        "model": "ours", "setup": setup_label(trainer.config) + " (python -m ddpm_teach train --preset cpu-fast, "
                                                                "its start-up probe's choice)",
        "parameters": num_parameters(trainer.model), "steps": trainer.step, "seconds": seconds,
        "img_per_s": trainer.step * config.batch_size / seconds, "final_loss": sum(trainer.loss_history[-50:]) / 50,
        "lr": config.lr, "batch": config.batch_size, "ema_decay": config.ema_decay,
    }


def train_peer(data, minutes: float, seed: int, steps: int | None = None):
    """diffusers' own training recipe (train_unconditional.py), fp32 eager, fitted to the budget;
    or, with ``steps``, exactly that many steps (the cosine over them) whatever the time."""
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    config, _ = fast_path_configs(minutes, "unused")
    torch.manual_seed(seed)
    model = build_peer(COURSE_UNET).train()
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = EMAModel(model.parameters(), decay=config.ema_decay)       # (1 + n)/(10 + n) warm-up, as ours
    budget, planned = (60.0 * minutes, config.steps) if steps is None else (math.inf, steps)
    lr_lambda = {"fn": None}

    def make_lr(total):
        lr_lambda["fn"] = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, total, last_epoch=-1)
    # diffusers' scheduler objects are LambdaLRs; fitting the cosine to the budget rebuilds one at
    # the step it is known, continuing from the current step
    make_lr(planned)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    losses, step, calibration_start = [], 0, None
    started = time.perf_counter()
    bar = tqdm(total=planned, desc="train diffusers", dynamic_ncols=True)
    while step < planned:
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            break
        if steps is not None:
            pass                                 # a fixed number of steps: nothing to fit
        elif step == CALIBRATION[0]:
            calibration_start = time.perf_counter()
        elif step == CALIBRATION[1]:
            rate = (CALIBRATION[1] - CALIBRATION[0]) / (time.perf_counter() - calibration_start)
            planned = step + int((budget - elapsed) * rate)
            last = lr_lambda["fn"].last_epoch
            make_lr(planned)
            for _ in range(last):  # bring the new schedule to where the old one was
                lr_lambda["fn"].step()
            bar.total = planned
        start = (step * config.batch_size) % (len(data) - config.batch_size + 1)
        x0, _ = data.batch(order[start:start + config.batch_size])
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, 1000, (x0.shape[0],), generator=generator)
        noisy = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model(noisy, t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        lr_lambda["fn"].step()
        ema.step(model.parameters())
        losses.append(loss.item())
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4f}", img_s=f"{step * config.batch_size / (time.perf_counter() - started):.0f}")
    bar.close()
    seconds = time.perf_counter() - started
    ema.copy_to(model.parameters())
    return model.eval(), scheduler, {
        "model": "diffusers", "setup": "fp32 eager (diffusers' example on a CPU)" + (f", {steps} steps" if steps else ""), "parameters": num_parameters(model),
        "steps": step, "seconds": seconds, "img_per_s": step * config.batch_size / seconds,
        "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])), "lr": config.lr, "batch": config.batch_size,
        "ema_decay": config.ema_decay,
    }


@torch.no_grad()
def ddim_diffusers(eps_fn, n: int, batch: int, seed: int) -> tuple[torch.Tensor, float]:
    """DDIM-50 (η = 0) with diffusers' ``DDIMScheduler`` as ``DDIMPipeline`` runs it: its defaults
    (leading spacing, clip_sample, set_alpha_to_one, use_clipped_model_output=False).
    ``eps_fn(x, t)`` is the network's ε̂ for a batch x and a scalar timestep t."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    scheduler.set_timesteps(SAMPLING_STEPS)
    generator = torch.Generator().manual_seed(seed)
    chunks, started = [], time.perf_counter()
    for begin in tqdm(range(0, n, batch), desc="sample, diffusers DDIMScheduler", leave=False):
        x = torch.randn((min(batch, n - begin), 1, 28, 28), generator=generator)
        for t in scheduler.timesteps:
            x = scheduler.step(eps_fn(x, t), t, x, eta=0.0).prev_sample
        chunks.append(x.clamp(-1, 1))
    return torch.cat(chunks), time.perf_counter() - started


@torch.no_grad()
def ddim_ours(model, schedule, n: int, batch: int, seed: int, bf16: bool = False) -> tuple[torch.Tensor, float]:
    """DDIM-50 (η = 0) with ddpm_teach's ``DDIMSampler`` and ``sample`` (uniform spacing, x̂_0
    clipped and ε re-derived from it)."""
    sampler = DDIMSampler(schedule, steps=SAMPLING_STEPS, eta=0.0)
    generator = torch.Generator().manual_seed(seed)
    chunks, started = [], time.perf_counter()
    for begin in tqdm(range(0, n, batch), desc="sample, ddpm_teach DDIMSampler" + (" (bf16)" if bf16 else ""), leave=False):
        chunks.append(sample(model, sampler, min(batch, n - begin), generator=generator, progress=False,
                             precision="bf16" if bf16 else "fp32"))
    return torch.cat(chunks), time.perf_counter() - started


class _PeerForOurSampler(torch.nn.Module):
    """The diffusers model behind ddpm_teach's ``sample`` (which reads ``model.config``)."""

    def __init__(self, peer):
        super().__init__()
        self.peer, self.config = peer, COURSE_UNET

    def forward(self, x, t, labels=None):
        return self.peer(x, t).sample


def save_samples(images: torch.Tensor, path: Path) -> None:
    """The samples as ``python -m ddpm_teach sample`` writes them (uint8 images, labels -1), so
    that ``python -m ddpm_teach evaluate --samples PATH`` can score them again later."""
    import numpy as np

    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    np.savez_compressed(path, images=pixels, labels=np.full(len(pixels), -1, dtype=np.int64))


def _peer_steps(value: str) -> int | str:
    if value == "ours":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected a positive number of steps or 'ours', got {value!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scoring_run_arguments(parser, quick="2 minutes of training each, N=256",
                              smoke="6 seconds each, N=32, no torch.compile (for the tests)")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per model (default 15; 2 with --quick)")
    parser.add_argument("--classifier", default=None, help="classifier checkpoint (default: the shipped one)")
    parser.add_argument("--skip-peer", action="store_true", help="train and score ours only")
    parser.add_argument("--reuse-ours", default=None, metavar="DIR",
                        help="take our model and its training row from an earlier run's --out DIR instead of training it again")
    parser.add_argument("--peer-steps", default=None, metavar="S", type=_peer_steps,
                        help="train diffusers for exactly S steps instead of the wall-clock budget ('ours': as many "
                             "as ours took), for the equal-steps comparison (with --reuse-ours, ours is not retrained)")
    parser.add_argument("--skip-ours-extras", action="store_true",
                        help="score ours with its own fp32 sampler only (no bf16 or diffusers-sampler rows)")
    parser.add_argument("--out", default=None, help="folder for the sample grids and a JSON of the results")
    args = parser.parse_args(argv)
    minutes = args.minutes if args.minutes is not None else (0.1 if args.smoke else 2.0 if args.quick else 15.0)
    n = samples_to_score(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    budget_kind = "equal wall-clock budget" if args.peer_steps is None else "equal steps and batch"
    print(machine_header(f"CPU fast path vs diffusers, {budget_kind}", device,
                         Sizes("smoke" if args.smoke else "quick" if args.quick else "full", 0, 1, 1, "ours"),
                         timing=(f"{minutes:g} minutes of training each" if args.peer_steps is None else
                                 f"ours: {minutes:g} minutes of training; diffusers: as many steps "
                                 f"({args.peer_steps}), however long they take")
                                + " (torch.compile's warm-up included), one model after the other; then DDIM-50 "
                                "sampling and the classifier"))
    data = load_dataset("fashion_mnist", args.data_root, train=True)
    evaluator = Evaluator.load(args.classifier, data_root=args.data_root)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    rows, sampling = [], []   # sampling: (model, sampler, scores, seconds)
    if args.reuse_ours:
        previous = json.loads((Path(args.reuse_ours) / "fast_path.json").read_text())
        if previous["n"] != n or previous["minutes"] != minutes:
            raise SystemExit(f"--reuse-ours: that run had N={previous['n']}, {previous['minutes']} min; this one N={n}, {minutes} min.")
        model, schedule, _ = load_diffusion_model(Path(args.reuse_ours) / "fast_path_ours" / "checkpoint.pt")
        info = {k: v for k, v in previous["rows"][0].items() if k in ("model", "parameters", "steps", "seconds",
                                                                    "img_per_s", "final_loss", "lr", "batch", "ema_decay")}
        info["setup"] = "bf16 autocast + torch.compile (python -m ddpm_teach train --preset cpu-fast)"
        print(f"ours: trained in the earlier run of {args.reuse_ours} (its row and its EMA weights, not trained again)")
    else:
        model, schedule, info = train_ours(data, minutes, str((out or Path("runs")) / "fast_path_ours"), args.seed,
                                           compile=not args.smoke)
    images, seconds = ddim_ours(model, schedule, n, 250, args.seed + 1)
    scores = evaluator.score(images)
    rows.append({**info, **scores, "sample_seconds": seconds})
    sampling.append(("ours", "ddpm_teach DDIMSampler, fp32", scores, seconds))
    bf16_scores = {"fid": math.nan}
    if not args.skip_ours_extras and cpu_has_native_bf16():       # (emulated bf16 elsewhere: ~20x slower)
        bf16_images, bf16_seconds = ddim_ours(model, schedule, n, 250, args.seed + 1, bf16=True)
        bf16_scores = evaluator.score(bf16_images)
        sampling.append(("ours", "ddpm_teach DDIMSampler, bf16 autocast", bf16_scores, bf16_seconds))
    if not args.skip_peer and not args.skip_ours_extras:
        cross, seconds = ddim_diffusers(lambda x, t: model(x, t.expand(x.shape[0])), n, 250, args.seed + 1)
        sampling.append(("ours", "diffusers DDIMScheduler (DDIMPipeline defaults), fp32", evaluator.score(cross), seconds))
    if out:
        save_image_grid(images[:64], out / "fast_path_ours.png")
        save_samples(images, out / "fast_path_ours.npz")
    if not args.skip_peer:
        peer_steps = rows[0]["steps"] if args.peer_steps == "ours" else args.peer_steps
        peer, scheduler, info = train_peer(data, minutes, args.seed, steps=peer_steps)
        if out:
            torch.save(peer.state_dict(), out / "fast_path_diffusers_ema.pt")
        peer_images, seconds = ddim_diffusers(lambda x, t: peer(x, t).sample, n, 250, args.seed + 1)
        scores = evaluator.score(peer_images)
        rows.append({**info, **scores, "sample_seconds": seconds})
        sampling.append(("diffusers", "diffusers DDIMScheduler (DDIMPipeline defaults), fp32", scores, seconds))
        cross, seconds = ddim_ours(_PeerForOurSampler(peer).eval(), schedule, n, 250, args.seed + 1)
        sampling.append(("diffusers", "ddpm_teach DDIMSampler, fp32", evaluator.score(cross), seconds))
        if out:
            save_image_grid(peer_images[:64], out / "fast_path_diffusers.png")
            save_samples(peer_images, out / "fast_path_diffusers.npz")
            save_image_grid(cross[:64], out / "fast_path_diffusers_our_sampler.png")
    noise = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(args.seed)).clamp(-1, 1)
    noise_fid = evaluator.fid(noise)

    training = (f"training for the same {rows[0]['steps']} steps each" if args.peer_steps is not None and len(rows) == 2
                else f"training for {minutes:g} minutes each")
    print(f"\n{training}, then DDIM-50 (fp32) of N={n} from the EMA weights; "
          f"classifier-FID against the test set (real-vs-real floor at N={n}: {rows[0]['fid_floor']:.2f}; "
          f"clipped Gaussian noise: {noise_fid:.1f})")
    header = f"{'model':<10} {'setup':<72} {'params':>9} {'steps':>6} {'img/s':>6} {'train s':>8} {'loss':>7} {'FID':>7}"
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['model']:<10} {r['setup']:<72} {r['parameters']:>9,} {r['steps']:>6} {r['img_per_s']:>6.0f} "
              f"{r['seconds']:>8.0f} {r['final_loss']:>7.4f} {r['fid']:>7.2f}")
    print(f"\neach model's EMA weights, DDIM-50 (η = 0) from the same seed, N={n}; each sampler with its library's defaults")
    header = f"{'model':<10} {'sampler':<55} {'FID':>7} {'sampling s':>11}"
    print(header + "\n" + "-" * len(header))
    for name, sampler_name, scores, seconds in sampling:
        print(f"{name:<10} {sampler_name:<55} {scores['fid']:>7.2f} {seconds:>11.0f}")
    for r in rows:
        verdict = "yes" if r["fid"] <= RECOGNISABLE_FID else "no"
        print(f"recognisable (classifier-FID <= {RECOGNISABLE_FID:g} at N={n}) after {r['seconds'] / 60:.0f} min "
              f"({r['steps']} steps), {r['model']}: {verdict}")
    if len(rows) == 2:
        print(f"ratio ours/diffusers train img/s in this run: {rows[0]['img_per_s'] / rows[1]['img_per_s']:.2f}")
        print(f"ratio diffusers/ours classifier-FID at {budget_kind} (above 1: ours is better): "
              f"{rows[1]['fid'] / rows[0]['fid']:.2f}")
        same = {name: scores["fid"] for name, sampler_name, scores, _ in sampling if sampler_name == "ddpm_teach DDIMSampler, fp32"}
        print(f"ratio diffusers/ours classifier-FID at {budget_kind}, both sampled by ddpm_teach's DDIMSampler "
              f"(the networks alone): {same['diffusers'] / same['ours']:.2f}")
    if out:
        result = {"minutes": minutes, "n": n, "comparison": budget_kind, "peer_steps": args.peer_steps, "noise_fid": noise_fid, "threshold": RECOGNISABLE_FID,
                  "bf16_sampling_fid": bf16_scores["fid"], "rows": rows, "reused_ours_from": args.reuse_ours,
                  "sampling": [{"model": a, "sampler": b, "fid": c["fid"], "seconds": d} for a, b, c, d in sampling], "machine": machine_header(
                      "fast path", device, Sizes("x", 0, 1, 1, "ours"))}
        (out / "fast_path.json").write_text(json.dumps(result, indent=2, default=float))
        print(f"wrote {out / 'fast_path.json'} and the sample grids")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
