"""The GPU suite's three parts that measure in this process (see ``benchmarks/gpu_suite.py``):

1. ``train``: training throughput and MFU, our UNet against the matched diffusers peer;
2. ``sample``: DDIM sampling throughput, ours against the peer under diffusers' DDIMScheduler;
5. ``memory``: the peak GPU memory of two eager training steps (``image_sizes.gpu_peak_bytes``)."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from benchmarks.common import (AMP_DTYPE_NAMES, PeerAdapter, Timer, autocast, build_peer, diffusers_version,
                               flops_per_image, num_parameters, peak_tflops, print_table)
from benchmarks.gpu_suite_setup import NOT_MEASURED, PHOTOS64_CONFIG, Suite, free_memory, number_cell, past
from benchmarks.image_sizes import gpu_peak_bytes
from ddpm_teach.data import to_model_range
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.trainer import optimizer_options
from ddpm_teach.training import BatchOrder, make_ema, train_step
from ddpm_teach.unet import UNet, UNetConfig

__all__ = ["compare_models", "TrainLoop", "part_train", "sampling_runners", "part_sample", "peak_train_bytes",
           "memory_jobs", "part_memory"]


# ----------------------------------------------------------------------------------------------
# 1. training throughput and MFU
# ----------------------------------------------------------------------------------------------

def compare_models(suite: Suite) -> tuple[dict[str, torch.nn.Module], str]:
    """Our UNet and the matched diffusers peer, each from the same seed; without diffusers, ours
    alone and a line that says so."""
    torch.manual_seed(suite.scale.train.seed)
    models = {"ours": UNet(suite.scale.unet)}
    try:
        torch.manual_seed(suite.scale.train.seed)
        models["diffusers"] = PeerAdapter(build_peer(suite.scale.unet, layout="matched"))
        return models, f"diffusers {diffusers_version()} UNet2DModel, build_peer(layout='matched')"
    except ImportError as err:
        note = f"skipped (diffusers is not installed: {err}; pip install -e '.[bench]')"
        print(f"peer: {note}")
        return models, note


class TrainLoop:
    """One model under the trainer's own step (``train_step``: Algorithm 1, grad clip, EMA, the
    loss read back), the gpu preset's optimizer and precision, on real images on the device."""

    def __init__(self, model: torch.nn.Module, suite: Suite, images: torch.Tensor):
        cfg, device = suite.scale.train, suite.device
        self.cfg, self.amp_dtype, self.images = cfg, suite.amp_dtype, images
        self.model = model.to(device).train()
        self.ema = make_ema(self.model, cfg.ema_decay, cfg.ema_warmup)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           **optimizer_options(device))
        self.scaler = torch.amp.GradScaler(device.type, enabled=suite.amp_dtype == torch.float16)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.schedule = NoiseSchedule.from_name(cfg.schedule, cfg.T)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.order = BatchOrder(len(images), cfg.batch_size, cfg.seed)
        self.k, self.loss = 0, float("nan")

    def step(self) -> None:
        x0 = to_model_range(self.images[self.order.indices(self.k).to(self.images.device)])   # (B, 1, 28, 28) in [-1, 1]
        self.loss = train_step(self.forward, self.schedule, [(x0, None)], self.optimizer, self.ema, self.generator,
                               grad_clip=self.cfg.grad_clip, amp_dtype=self.amp_dtype, scaler=self.scaler)
        self.k += 1


def part_train(suite: Suite, deadline: float) -> dict:
    """1. images/s, ms/step, TFLOP/s and MFU of ours and the peer, then the ratio line."""
    device, scale, cfg = suite.device, suite.scale, suite.scale.train
    images = suite.images.to(device)             # resident, as the trainer keeps it on a GPU
    models, peer = compare_models(suite)
    # model FLOPs, counted on our UNet: the matched peer computes the same function (tests/test_peer.py),
    # and FlopCounterMode does not see every fused attention kernel it may pick (the CPU's, for one)
    forward_flops, train_flops = flops_per_image(models["ours"].to(device), scale.unet, device)    # per image
    loops, timers = {}, {}
    for name, model in models.items():
        if loops and past(deadline):
            print(f"{name}: skipped, the part's budget is spent")
            continue
        loops[name] = TrainLoop(model, suite, images)
        timers[name] = Timer(loops[name].step, device)
        print(f"warming up {name}: {scale.warmup} step(s){' (torch.compile compiles here)' if cfg.compile else ''} ...",
              flush=True)
        timers[name].warmup(scale.warmup)
    for _ in range(scale.repeats):               # interleaved: a change of load falls on both alike
        for timer in timers.values():
            timer.block(scale.iters)
    peak = peak_tflops(device)
    rows = []
    for name, loop in loops.items():
        rate = cfg.batch_size / timers[name].median
        achieved = rate * train_flops                                          # FLOP/s, forward+backward
        if not math.isfinite(loop.loss):
            raise FloatingPointError(f"{name}: the loss is {loop.loss}")
        rows.append({"model": name, "parameters": num_parameters(loop.model), "img_per_s": rate,
                     "ms_per_step": 1000 * timers[name].median, "forward_gflop_per_image": forward_flops / 1e9,
                     "train_gflop_per_image": train_flops / 1e9, "achieved_tflops": achieved / 1e12,
                     "mfu": achieved / (peak * 1e12) if peak else None, "warmup_s": timers[name].warmup_seconds,
                     "loss": loop.loss})
    setup = (f"batch {cfg.batch_size}, {suite.precision}{' autocast' if suite.amp_dtype else ''}, "
             f"{'torch.compile' if cfg.compile else 'eager'}, {'fused ' if optimizer_options(device) else ''}AdamW")
    print(f"\ntraining steps (train_step: grad clip {cfg.grad_clip:g}, EMA, the loss read back), {setup}")
    print_table([{"model": r["model"], "parameters": f"{r['parameters']:,}", "img/s": f"{r['img_per_s']:.1f}",
                  "ms/step": f"{r['ms_per_step']:.2f}", "train GFLOP/img": f"{r['train_gflop_per_image']:.3f}",
                  "TFLOP/s": f"{r['achieved_tflops']:.3f}",
                  "MFU": f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "unknown peak"} for r in rows])
    rate = {r["model"]: r["img_per_s"] for r in rows}
    ratio = rate["ours"] / rate["diffusers"] if "diffusers" in rate else None
    print(f"ratio ours/peer train img/s: {ratio:.2f}" if ratio else "ratio ours/peer train img/s: n/a (no peer)")
    del loops, timers, images
    free_memory(device)
    return {"setup": setup, "batch": cfg.batch_size, "precision": suite.precision, "compile": cfg.compile,
            "peak_tflops": peak, "peer": peer, "rows": rows, "ratio_ours_peer_img_per_s": ratio,
            "flops": "model FLOPs: FlopCounterMode's forward+backward count per image of our UNet (a multiply-add "
                     "is 2 FLOPs), for both models: the matched peer computes the same function"}


# ----------------------------------------------------------------------------------------------
# 2. sampling throughput
# ----------------------------------------------------------------------------------------------

def sampling_runners(suite: Suite, models: dict) -> dict[str, Callable]:
    """``run(x_T, precision)`` → x_0 with DDIM (η = 0, leading spacing, x̂_0 clipped) for ours and,
    when it is there, for the peer network under diffusers' DDIMScheduler loop."""
    from benchmarks.sample_throughput import diffusers_ddim, diffusers_scheduler
    from ddpm_teach.samplers import DDIMSampler, sample

    steps, device = suite.scale.sample_steps, suite.device
    schedule = NoiseSchedule.from_name("linear", 1000)
    ours, sampler = models["ours"].to(device).eval(), DDIMSampler(schedule, steps=steps, spacing="leading")
    runners = {"ours": lambda x_T, precision: sample(ours, sampler, x_T=x_T, progress=False, precision=precision)}
    if "diffusers" in models:
        peer, scheduler = models["diffusers"].peer.to(device).eval(), diffusers_scheduler(schedule, "leading")

        def run_peer(x_T, precision):
            dtype = {v: k for k, v in AMP_DTYPE_NAMES.items()}.get(precision)
            with autocast(device, dtype):
                return diffusers_ddim(peer, scheduler, x_T, steps)
        runners["diffusers"] = run_peer
    return runners


def part_sample(suite: Suite, deadline: float) -> dict:
    """2. DDIM images/s for each batch and precision, ours against the peer, then the ratio line."""
    device, scale = suite.device, suite.scale
    models, peer = compare_models(suite)
    runners = sampling_runners(suite, models)
    precisions = ["fp32"] + ([suite.precision] if suite.amp_dtype else [])
    generator = torch.Generator(device=device).manual_seed(suite.args.seed)
    rows = []
    for batch in scale.sample_batches:
        shape = (batch, scale.unet.in_channels, scale.unet.image_size, scale.unet.image_size)
        x_T = torch.randn(shape, generator=generator, device=device)                       # (B, C, H, W)
        for precision in precisions:
            if rows and past(deadline):
                print(f"batch {batch}, {precision}: skipped, the part's budget is spent")
                continue
            timers = {name: Timer(lambda run=run, precision=precision: run(x_T, precision), device)
                      for name, run in runners.items()}
            with torch.inference_mode():
                for timer in timers.values():
                    timer.warmup(1)
                for _ in range(scale.sample_repeats):
                    for timer in timers.values():
                        timer.block(1)
            rate = {name: batch / timer.median for name, timer in timers.items()}
            rows.append({"batch": batch, "precision": precision, "steps": scale.sample_steps,
                         "ours_img_per_s": rate["ours"], "peer_img_per_s": rate.get("diffusers"),
                         "ratio": rate["ours"] / rate["diffusers"] if "diffusers" in rate else None})
    print(f"\nDDIM-{scale.sample_steps} sampling under torch.inference_mode (median of {scale.sample_repeats} "
          "whole run(s), ours and the peer interleaved)")
    print_table([{"batch": r["batch"], "precision": r["precision"], "ours img/s": f"{r['ours_img_per_s']:.1f}",
                  "peer img/s": f"{r['peer_img_per_s']:.1f}" if r["peer_img_per_s"] else "-",
                  "ours/peer": f"{r['ratio']:.2f}" if r["ratio"] else "-"} for r in rows])
    headline = rows[-1]                          # the largest batch, in the autocast dtype where there is one
    if headline["ratio"]:
        print(f"ratio ours/peer sample img/s: {headline['ratio']:.2f}")
        print(f"  (batch {headline['batch']}, {headline['precision']}; every setting: "
              + ", ".join(f"{r['batch']} {r['precision']} {r['ratio']:.2f}" for r in rows) + ")")
    else:
        print("ratio ours/peer sample img/s: n/a (no peer)")
    del models, runners
    free_memory(device)
    return {"sampler": f"DDIM-{scale.sample_steps}, eta=0, leading spacing, x0 clipped", "peer": peer, "rows": rows,
            "ratio_ours_peer_img_per_s": headline["ratio"], "headline": {"batch": headline["batch"],
                                                                          "precision": headline["precision"]}}


# ----------------------------------------------------------------------------------------------
# 5. peak GPU memory
# ----------------------------------------------------------------------------------------------

def peak_train_bytes(config: UNetConfig, batch: int, grad_accum: int, device: torch.device,
                     amp_dtype: torch.dtype | None) -> int | str | None:
    """``torch.cuda.max_memory_allocated()`` over two optimizer steps of ``train_step`` (the
    trainer's AdamW and EMA; the second step has AdamW's moments from the start), eager, on random
    images [batch, C, H, W] in ``grad_accum`` micro-batches; "OOM at batch B"; None off CUDA,
    where the steps still run (the dry run's check of this path): ``image_sizes.gpu_peak_bytes``
    for the UNet's own input channels and the suite's precision."""
    return gpu_peak_bytes(config, batch, device, in_channels=config.in_channels, amp_dtype=amp_dtype,
                          grad_accum=grad_accum)


def memory_jobs(suite: Suite) -> list[tuple[str, UNetConfig, int, int]]:
    """(name, UNet, batch, grad_accum): the gpu preset's UNet at its batch, and photos64's."""
    from benchmarks.image_sizes import course_models
    from ddpm_teach.config import read_config_file

    recipe, scale = read_config_file(PHOTOS64_CONFIG), suite.scale
    photos = course_models(PHOTOS64_CONFIG)["photos64"]
    if scale.photos64_base:
        photos = dataclasses.replace(photos, base_channels=scale.photos64_base)
    return [("gpu preset (UNetConfig())", scale.unet, scale.train.batch_size, 1),
            ("photos64 (configs/photos64_gpu.toml)", photos, scale.photos64_batch or int(recipe["batch_size"]),
             int(recipe.get("grad_accum", 1)))]


def part_memory(suite: Suite, deadline: float) -> dict:
    """5. Peak memory of a training step for each model of :func:`memory_jobs`."""
    rows = []
    for name, config, batch, grad_accum in memory_jobs(suite):
        if rows and past(deadline):
            print(f"{name}: skipped, the part's budget is spent")
            continue
        peak = peak_train_bytes(config, batch, grad_accum, suite.device, suite.amp_dtype)   # bytes, "OOM ..." or None
        rows.append({"model": name, "image_size": config.image_size, "in_channels": config.in_channels,
                     "parameters": num_parameters(UNet(config)), "batch": batch, "grad_accum": grad_accum,
                     "precision": suite.precision,
                     "peak_mb": peak / 1e6 if isinstance(peak, int) else peak or NOT_MEASURED})
    print("\npeak memory of two eager train_step calls (torch.cuda.max_memory_allocated; the data set, which the "
          "trainer also keeps on the GPU, not included)")
    print_table([{"model": r["model"], "px": r["image_size"], "parameters": f"{r['parameters']:,}",
                  "batch": f"{r['batch']} x {r['grad_accum']}", "precision": r["precision"],
                  "peak MB": number_cell(r["peak_mb"], ",.0f")} for r in rows])
    return {"rows": rows, "mode": "eager (the gpu preset and photos64 compile; compiled peaks may be lower)"}
