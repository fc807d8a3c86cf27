"""The GPU suite's shared pieces: its parts and their budget, the sizes of a run (the GPU's or the
dry run's toy ones), and :class:`Suite`, what every part is handed (the device, the sizes, the
training images and the paths).  The command is ``benchmarks/gpu_suite.py``."""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks.common import AMP_DTYPE_NAMES, REPO_ROOT
from ddpm_teach.training import TrainConfig, preset_configs
from ddpm_teach.unet import UNetConfig

__all__ = ["SUITE", "PARTS", "TITLES", "NOT_MEASURED", "RESULTS", "PHOTOS64_CONFIG", "TOY_UNET", "Scale", "gpu_scale", "dry_scale", "part_seconds", "Suite",
           "now_utc", "past", "relative", "free_memory", "number_cell"]

SUITE = "benchmarks/gpu_suite.py"
PARTS = ("train", "sample", "fid", "quality", "memory")
TITLES = {"train": "Training throughput and MFU", "sample": "DDIM sampling throughput",
          "fid": "Classifier-FID against training minutes (--preset gpu)", "quality": "Quality tables",
          "memory": "Peak GPU memory of a training step"}
SHARE_S = {"train": 120.0, "sample": 60.0, "memory": 30.0}   # fid: --fid-minutes + FID_EXTRA_S; quality: the rest
FID_EXTRA_S = 90.0           # the training process's start-up and the scoring of its checkpoints
MIN_PART_S = 30.0            # a subprocess part with less than this left is skipped
FID_MAX_SNAPSHOTS = 8        # checkpoints scored per run at most (evenly spaced, the last always)
NOT_MEASURED = "not measured (no GPU)"
RESULTS = REPO_ROOT / "benchmarks" / "results"
PHOTOS64_CONFIG = REPO_ROOT / "configs" / "photos64_gpu.toml"
TOY_UNET = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(14,))


# ----------------------------------------------------------------------------------------------
# sizes and budget
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """The sizes of one run: the GPU's, or the dry run's toy ones."""

    name: str
    unet: UNetConfig                 # our UNet in parts 1, 2 and 5 (the peer copies its layout)
    train: TrainConfig               # the gpu preset: batch, precision, compile, lr, EMA, grad clip
    warmup: int                      # untimed training steps (torch.compile compiles in the first)
    repeats: int                     # timed blocks, ours and the peer's interleaved; the median is reported
    iters: int                       # training steps per block
    sample_batches: tuple[int, ...]
    sample_steps: int                # DDIM steps
    sample_repeats: int
    fid_n: int
    checkpoint_every: int
    quality_args: tuple[str, ...]
    photos64_base: int | None        # None: configs/photos64_gpu.toml's own width
    photos64_batch: int | None       # None: the file's batch_size


def gpu_scale() -> Scale:
    train, unet = preset_configs("gpu")
    return Scale("gpu", unet, train, warmup=5, repeats=5, iters=20, sample_batches=(256, 1024), sample_steps=50,
                 sample_repeats=3, fid_n=1000, checkpoint_every=1000, quality_args=("--n", "5000"),
                 photos64_base=None, photos64_batch=None)


def dry_scale() -> Scale:
    """Toy sizes; bf16 autocast (the CPU has it) so that the autocast rows run too."""
    train, _ = preset_configs("gpu", batch_size=4, compile=False, mixed_precision="bf16")
    return Scale("DRY RUN, toy", TOY_UNET, train, warmup=1, repeats=1, iters=2, sample_batches=(4, 8), sample_steps=1,
                 sample_repeats=1, fid_n=16, checkpoint_every=1,
                 quality_args=("--quick", "--n", "8", "--tables", "ddim", "--batch-size", "8"),
                 photos64_base=8, photos64_batch=2)


def part_seconds(part: str, left_s: float, later: list[str], fid_minutes: float) -> float:
    """The seconds ``part`` may take with ``left_s`` of the budget left and the ``later`` parts still
    to run: its share, less what the later parts' shares need.  ``quality`` has no share of its
    own: it takes whatever is left after the later parts' reserve."""
    share = {**SHARE_S, "fid": 60.0 * fid_minutes + FID_EXTRA_S}
    available = left_s - sum(share[p] for p in later if p in share)
    return max(0.0, available if part == "quality" else min(share[part], available))



# ----------------------------------------------------------------------------------------------
# the run: device, sizes and paths
# ----------------------------------------------------------------------------------------------

@dataclass
class Suite:
    """What every part needs: the device, the sizes, the training images and the paths."""

    args: argparse.Namespace
    device: torch.device
    scale: Scale
    amp_dtype: torch.dtype | None
    images: torch.Tensor | None      # Fashion-MNIST train, uint8 (N, 1, 28, 28), on the CPU
    out: Path
    run_dir: Path
    quality_out: Path

    @property
    def dry_run(self) -> bool:
        return self.args.dry_run

    @property
    def precision(self) -> str:
        return AMP_DTYPE_NAMES.get(self.amp_dtype, "fp32")

    @property
    def env(self) -> dict:
        """The subprocesses' environment: this one, with --data-root as DDPM_TEACH_DATA."""
        root = self.args.data_root
        return {**os.environ, **({"DDPM_TEACH_DATA": str(Path(root).resolve())} if root else {})}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def past(deadline: float) -> bool:
    return time.perf_counter() > deadline


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)

def free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def number_cell(value, spec: str, none: str = "-") -> str:
    return none if value is None else value if isinstance(value, str) else format(value, spec)
