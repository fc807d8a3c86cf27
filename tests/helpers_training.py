"""Small shared builders for the training, checkpoint, evaluation, CLI and distributed tests.

Everything here is tiny on purpose (8×8 images, an 8-channel two-level UNet): these tests run on a
busy 2-core CPU.  Imported by the test modules; not a pytest plugin.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from ddpm_teach.data import ImageData
from ddpm_teach.training import TrainConfig
from ddpm_teach.unet import UNetConfig

REPO = Path(__file__).resolve().parent.parent


def random_image_data(n: int = 64, size: int = 8, num_classes: int = 3, channels: int = 1, seed: int = 0) -> ImageData:
    """``n`` random uint8 images [n, channels, size, size] with labels in 0..num_classes-1."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return ImageData(images, labels, [f"class{k}" for k in range(num_classes)], "random")


def tiny_model_config(**overrides) -> UNetConfig:
    """A two-level 8-channel UNet for 8×8 images (attention at 4×4).  Dropout is on by default so
    that resume tests also prove the global RNG (dropout's source) is restored."""
    options = dict(image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                   num_heads=2, dropout=0.1, norm_groups=4)
    options.update(overrides)
    return UNetConfig(**options)


def tiny_train_config(out_dir, **overrides) -> TrainConfig:
    options = dict(steps=6, batch_size=8, T=50, lr=1e-3, warmup_steps=2, ema_decay=0.9, device="cpu",
                   mixed_precision="no", checkpoint_every=0, out_dir=str(out_dir), seed=0)
    options.update(overrides)
    return TrainConfig(**options)


def cli_env() -> dict:
    """The environment for ``python -m ddpm_teach`` subprocesses: one thread, CPU, the repo importable."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", DDPM_TEACH_DEVICE="cpu", PYTHONUNBUFFERED="1",
               TQDM_DISABLE="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_cli(*args, cwd=None) -> subprocess.Popen:
    """``python -m ddpm_teach ARGS`` in a subprocess, returned at once (so independent commands can
    run side by side); collect it with :func:`finish`."""
    return subprocess.Popen([sys.executable, "-m", "ddpm_teach", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=cwd or REPO)


def finish(proc: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
