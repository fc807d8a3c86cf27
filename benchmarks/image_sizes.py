"""Parameters, FLOPs and training memory of the course's UNets at 32, 64 and 128 px, and the largest
batch that an estimate says fits a 16 GB GPU (issue item 5: "what do I change for 64x64 photos, and
will it fit a free Colab T4?").

    python benchmarks/image_sizes.py            # three models at 32, 64 and 128 px (a few minutes on 2 cores)
    python benchmarks/image_sizes.py --quick    # 32 px only (seconds; the smoke test)

The models, all with 3 input channels (colour), unconditional:

* ``cpu-fast``: the UNet of ``--preset cpu-fast``: base 32, mults (1, 2, 2), one ResBlock per level, no dropout;
* ``course default``: ``UNetConfig()``: base 64, mults (1, 2, 2), two ResBlocks per level, dropout 0.1;
* ``photos64``: the UNet of ``configs/photos64_gpu.toml``, read through the command line's parser.

The rule that fits a model to an image size: the lowest feature map is 8x8 at every size, so a model
has log2(size/8) + 1 levels.  A model with fewer levels than that gets extra levels of width 1·base in
front, at the high resolutions (as DDPM's 256 px model, mults (1, 1, 2, 2, 4, 4)); one with more loses
its lowest levels.  Attention sits at the 16x16 and 8x8 levels at every size (and in the bottleneck).
So cpu-fast is (1, 2, 2) at 32 px, (1, 1, 2, 2) at 64 px and (1, 1, 1, 2, 2) at 128 px.

What is counted on the CPU, for each model and size, over the training forward pass
(:func:`ddpm_teach.training.diffusion_loss`: q_sample, the UNet, the MSE) and its backward pass:

1. FLOPs per image: ``FlopCounterMode`` over the forward and the backward pass of a batch, divided by
   the batch (a multiply-add is 2 FLOPs; convolutions, matmuls and attention are counted, element-wise
   operations are not), at ``--batch`` (2).  The forward count at batch 1 and at batch 2 is checked
   to be linear.
2. Memory saved for backward: every tensor autograd keeps during the forward pass
   (``torch.autograd.graph.saved_tensors_hooks``), each storage counted once, the parameters left out,
   at batch 2 and at batch 3.  The difference is the per-image part; the rest is per step (under
   autocast, the 16-bit copies of the weights).  Not at batch 1: there a reshape inside attention
   that copies q (or k, v) at B > 1 is a view of the whole q-k-v tensor, and keeps all of it alive.
   Counted in fp32 and under bf16 autocast; fp16 keeps the same bytes (both are 2-byte types), but
   the CPU's autocast sends a few operations to 16 bit that CUDA's keeps in fp32 and the other way
   round.  Attention runs the kernel PyTorch picks.  The fused kernels (flash, memory-efficient), on
   the CPU and on CUDA, need q, k and v with a last-dimension stride of 1, which this UNet's attention
   does not give them, so it is the math kernel, which keeps the (H·W)² attention weights for
   backward (1 MiB per image for a 4-head attention layer at 16x16, in fp32).
3. Fixed memory: the weights, their gradients, AdamW's two moments and the EMA copy, 5 × 4 bytes per
   parameter (autocast leaves the weights in fp32).
4. The largest batch that fits: floor((usable − fixed − per step) / per image), with usable =
   ``--gpu-gib`` (14.5 GiB; PyTorch reports 14.5-14.75 GiB as the total of a 16 GB T4) less
   ``--margin`` (20%) for what the estimate leaves out: the CUDA context, cuDNN's workspaces, the
   gradients of activations alive during backward, and the allocator's fragmentation.  This is an
   estimate from saved tensors, not a measurement of the allocator.  The training data, which the
   trainer keeps on the GPU, comes on top: 12 KiB per 64x64 colour image.
5. On a CUDA machine, also the real ``torch.cuda.max_memory_allocated()`` over two optimizer steps of
   :func:`ddpm_teach.training.train_step` (autocast as ``--mixed-precision auto`` picks it, the
   trainer's AdamW, the EMA) at ``--gpu-batch``; elsewhere that column says so.

Writes ``--out-dir``/image_sizes.json and image_sizes.md (default: benchmarks/results/).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry
from tqdm.auto import tqdm

from benchmarks.common import SIZES, machine_header, print_table
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.training import diffusion_loss, preset
from ddpm_teach.unet import UNet, UNetConfig

__all__ = ["PHOTOS64_CONFIG", "course_models", "at_size", "SavedTensors", "count_pass", "measure_model",
           "max_batch", "gpu_peak_bytes", "markdown", "main"]

ROOT = Path(__file__).resolve().parent.parent
PHOTOS64_CONFIG = ROOT / "configs" / "photos64_gpu.toml"
LOWEST_RESOLUTION = 8            # every model goes down to 8x8 ...
ATTENTION_RESOLUTIONS = (16, 8)  # ... and attends at 16x16 and 8x8
BYTES_PER_PARAMETER = {"weights": 4, "gradients": 4, "AdamW moments": 8, "EMA copy": 4}
ESTIMATE_NOTE = ("an estimate from the tensors autograd saves (on the CPU), plus 20 bytes per parameter; "
                 "not a measurement of the CUDA allocator")
NOT_MEASURED = "not measured (no GPU)"


def _as_is(formula):
    """A formula of ``flop_registry`` (already wrapped to take tensors) for ``custom_mapping``,
    which would otherwise wrap it a second time."""
    def count(*args, **kwargs):
        return formula(*args, **kwargs)
    count._get_raw = True
    return count


# The CPU's flash-attention kernel (used if q, k, v are ever laid out for it) is not in
# FlopCounterMode's table; its FLOPs are those of the GPU flash kernel, whose arguments come in the
# same order: 4·B·heads·N²·head_dim forward.  The math kernel used today is counted as its matmuls.
_aten = torch.ops.aten
CPU_ATTENTION_FLOPS = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _as_is(flop_registry[_aten._scaled_dot_product_flash_attention]),
    _aten._scaled_dot_product_flash_attention_for_cpu_backward:
        _as_is(flop_registry[_aten._scaled_dot_product_flash_attention_backward]),
}


def course_models(photos64_config: str | Path = PHOTOS64_CONFIG) -> dict[str, UNetConfig]:
    """The three UNets of the table, each at its own image size."""
    from ddpm_teach.cli import parse_args
    from ddpm_teach.commands import DERIVED_MODEL_FIELDS

    model_fields = {f.name for f in dataclasses.fields(UNetConfig)}
    cpu_fast = UNetConfig(**{k: v for k, v in preset("cpu-fast").items() if k in model_fields}, in_channels=3)
    args = parse_args(["train", "--config", str(photos64_config)])
    photos = UNetConfig(**{name: getattr(args, name) for name in model_fields - DERIVED_MODEL_FIELDS},
                        image_size=args.image_size, in_channels=3)
    return {"cpu-fast": cpu_fast, "course default": UNetConfig(in_channels=3), "photos64": photos}


def at_size(model: UNetConfig, image_size: int) -> UNetConfig:
    """``model`` fitted to ``image_size`` by the rule of the module docstring: levels down to 8x8
    (extra 1·base levels in front, or the lowest levels dropped), attention at 16x16 and 8x8."""
    ratio = image_size // LOWEST_RESOLUTION
    if image_size % LOWEST_RESOLUTION or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(f"image_size must be 8·2^k with k >= 1 (16, 32, 64, 128, ...), got {image_size}.")
    levels = int(math.log2(ratio)) + 1
    mults = tuple(model.channel_mults)
    mults = (1,) * (levels - len(mults)) + mults if levels >= len(mults) else mults[:levels]
    return UNetConfig(**{**model.to_dict(), "image_size": image_size, "in_channels": 3, "channel_mults": mults,
                         "attention_resolutions": ATTENTION_RESOLUTIONS})


class SavedTensors:
    """``with SavedTensors(exclude=model.parameters()) as saved: loss = model(x)...``: afterwards
    ``saved.bytes`` is what autograd keeps for the backward pass of the code run inside, each
    storage counted once (two views of one tensor are one storage), the storages of ``exclude``
    (the parameters: fixed memory, counted elsewhere) left out.  Read it while the graph is alive or
    after: the storages are recorded as they are saved, and stay alive until the backward pass."""

    def __init__(self, exclude=()):
        self._exclude = {p.untyped_storage().data_ptr() for p in exclude}
        self._storages: dict[int, int] = {}            # data pointer → bytes
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self._exclude:
            self._storages[storage.data_ptr()] = max(self._storages.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor                                  # kept as it is: the pass runs unchanged

    def __enter__(self) -> "SavedTensors":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())


def count_pass(model: UNet, schedule: NoiseSchedule, batch: int, *, amp_dtype: torch.dtype | None = None,
               backward: bool = False, seed: int = 0) -> dict:
    """One training forward pass (and with ``backward`` its backward pass) of ``model`` on a random
    batch, on the CPU: ``{"forward_flops", "backward_flops" (None without backward), "saved_bytes"}``
    for the whole batch."""
    cfg = model.config
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=generator) * 2 - 1  # [B, C, H, W]
    t = torch.randint(0, schedule.T, (batch,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    autocast = None if amp_dtype is None else torch.autocast("cpu", dtype=amp_dtype)
    forward, saved = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS), SavedTensors(model.parameters())
    model.train()
    with saved, forward:
        loss, _ = diffusion_loss(model, schedule, x0, t, noise, autocast=autocast)
    result = {"forward_flops": forward.get_total_flops(), "backward_flops": None, "saved_bytes": saved.bytes}
    if backward:
        counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
        with counter:
            loss.backward()
        result["backward_flops"] = counter.get_total_flops()
        model.zero_grad(set_to_none=True)
    return result


def max_batch(per_image: float, fixed: float, usable: float) -> int:
    """The largest batch with fixed + batch·per_image <= usable (0 when not even one image fits)."""
    return max(0, int((usable - fixed) // per_image))


def gpu_peak_bytes(config: UNetConfig, batch: int, device: torch.device, *, in_channels: int = 3,
                   amp_dtype: torch.dtype | None | str = "auto", grad_accum: int = 1) -> int | str | None:
    """``torch.cuda.max_memory_allocated()`` over two optimizer steps of ``train_step`` at ``batch``
    (the trainer's AdamW and EMA; the second step has AdamW's moments from the start), on random
    images [batch, in_channels, H, W] in ``grad_accum`` micro-batches, under ``amp_dtype`` ("auto":
    the trainer's choice for ``device``), or "OOM at batch B".  None off CUDA, where the steps still
    run (the GPU suite's dry run checks this path)."""
    from ddpm_teach.trainer import amp_dtype_for, optimizer_options
    from ddpm_teach.training import make_ema, train_step

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
    torch.manual_seed(0)
    model = UNet(config).to(device)
    ema = make_ema(model, 0.999)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **optimizer_options(device))
    amp_dtype = amp_dtype_for("auto", device) if amp_dtype == "auto" else amp_dtype
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    schedule = NoiseSchedule.from_name("linear", 1000)
    generator = torch.Generator(device=device).manual_seed(0)
    size = config.image_size
    x0 = torch.rand(batch, in_channels, size, size, device=device, generator=generator) * 2 - 1   # [B, C, H, W]
    labels = torch.zeros(batch, dtype=torch.long, device=device)       # unused: the model is unconditional
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(2):
            train_step(model, schedule, [(x0, labels)] * grad_accum, optimizer, ema, generator, grad_clip=1.0,
                       amp_dtype=amp_dtype, scaler=scaler)
        if not cuda:
            return None
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    except torch.cuda.OutOfMemoryError:
        return f"OOM at batch {batch}"
    finally:
        del model, ema, optimizer
        if cuda:
            torch.cuda.empty_cache()


def measure_model(name: str, config: UNetConfig, *, batch: int, usable_bytes: float, gpu_batch: int,
                  device: torch.device | None, seed: int = 0) -> dict:
    """One row of the table (see the module docstring for what each number is)."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    torch.manual_seed(seed)
    model = UNet(config)
    params = model.num_parameters()
    fp32_one = count_pass(model, schedule, 1, seed=seed)                  # FLOPs: linear in the batch?
    fp32 = count_pass(model, schedule, batch, backward=True, seed=seed)
    fp32_more = count_pass(model, schedule, batch + 1, seed=seed)         # saved bytes: batch and batch + 1
    bf16 = count_pass(model, schedule, batch, amp_dtype=torch.bfloat16, seed=seed)
    bf16_more = count_pass(model, schedule, batch + 1, amp_dtype=torch.bfloat16, seed=seed)
    fixed = params * sum(BYTES_PER_PARAMETER.values())
    row = {"model": name, "image_size": config.image_size, "channel_mults": list(config.channel_mults),
           "attention_resolutions": list(config.attention_resolutions), "base_channels": config.base_channels,
           "num_res_blocks": config.num_res_blocks, "dropout": config.dropout, "params": params,
           "batch_counted": batch,
           "forward_gflop_per_image": fp32["forward_flops"] / batch / 1e9,
           "train_gflop_per_image": (fp32["forward_flops"] + fp32["backward_flops"]) / batch / 1e9,
           "forward_flops_batch_1": fp32_one["forward_flops"], f"forward_flops_batch_{batch}": fp32["forward_flops"],
           "flops_linear_in_batch": fp32["forward_flops"] == batch * fp32_one["forward_flops"],
           "fixed_mb": fixed / 1e6}
    for precision, counted, more in (("fp32", fp32, fp32_more), ("bf16", bf16, bf16_more)):
        per_image = more["saved_bytes"] - counted["saved_bytes"]
        per_step = counted["saved_bytes"] - batch * per_image
        row[f"saved_mb_per_image_{precision}"] = per_image / 1e6
        row[f"saved_mb_per_step_{precision}"] = per_step / 1e6
        row[f"max_batch_{precision}"] = max_batch(per_image, fixed + per_step, usable_bytes)
    row["gpu_batch"] = gpu_batch
    if device is not None and device.type == "cuda":
        peak = gpu_peak_bytes(config, gpu_batch, device)
        row["gpu_peak_mb"] = peak / 1e6 if isinstance(peak, int) else peak
        precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
        row["gpu_precision"] = precision
        row["estimate_at_gpu_batch_mb"] = (fixed / 1e6 + row["saved_mb_per_step_bf16"]
                                           + gpu_batch * row["saved_mb_per_image_bf16"])
    else:
        row["gpu_peak_mb"] = NOT_MEASURED
    return row


COLUMNS = ["model", "px", "mults", "params", "fwd GFLOP/img", "train GFLOP/img", "saved MB/img fp32",
           "saved MB/img 16-bit", "fixed MB", "max batch fp32", "max batch 16-bit", "GPU peak MB"]


def _cells(row: dict) -> list[str]:
    gpu = row["gpu_peak_mb"]
    gpu = gpu if isinstance(gpu, str) else f"{gpu:,.0f} at batch {row['gpu_batch']} (est. {row['estimate_at_gpu_batch_mb']:,.0f})"
    return [row["model"], str(row["image_size"]), "-".join(map(str, row["channel_mults"])), f"{row['params'] / 1e6:.2f}M",
            f"{row['forward_gflop_per_image']:.2f}", f"{row['train_gflop_per_image']:.2f}",
            f"{row['saved_mb_per_image_fp32']:.1f}", f"{row['saved_mb_per_image_bf16']:.1f}",
            f"{row['fixed_mb'] + row['saved_mb_per_step_bf16']:,.0f}",
            f"{row['max_batch_fp32']:,}", f"{row['max_batch_bf16']:,}", gpu]


def notes(args) -> list[str]:
    usable = args.gpu_gib * (1 - args.margin)
    return [f"max batch: {ESTIMATE_NOTE}: floor(({args.gpu_gib:g} GiB × (1 − {args.margin:g}) = {usable:.2f} GiB − fixed) "
            "/ saved per image); the margin covers the CUDA context, cuDNN workspaces, activation gradients during "
            "backward and fragmentation.",
            "fixed MB: weights, gradients, AdamW moments and EMA copy (20 bytes per parameter) plus the per-step "
            "saved bytes under 16-bit autocast (the 16-bit weight copies). The training data, kept on the GPU, comes "
            "on top (12 KiB per 64x64 colour image).",
            "16-bit: bf16 autocast on the CPU; fp16 (a T4) saves the same number of bytes per tensor.",
            "attention: 16x16 and 8x8 (and the bottleneck); the lowest level is 8x8 at every size. It runs PyTorch's "
            "math kernel (the fused kernels need a last-dimension stride of 1, which this UNet's q, k, v lack), which "
            "keeps the attention weights for backward.",
            "GPU peak MB: torch.cuda.max_memory_allocated() over two train_step calls with --mixed-precision auto; "
            + ("in parentheses, the estimate at that batch." if args.device_type == "cuda" else NOT_MEASURED + ".")]


def markdown(rows: list[dict], args, command: str) -> str:
    lines = ["UNet parameters, FLOPs and training memory by image size: `" + command + "`. The max-batch columns are "
             "an estimate from saved tensors, not a measurement of the GPU allocator (see the notes).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + "\n".join(f"* {note}" for note in notes(args)) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 px only (seconds; the smoke test)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="image sizes (default 32 64 128; --quick: 32)")
    parser.add_argument("--models", nargs="+", default=None, help="which of cpu-fast, 'course default', photos64 (default: all)")
    parser.add_argument("--batch", type=int, default=2,
                        help="FLOPs are counted at this batch (and at 1), saved bytes at it and one more (>= 2; default 2)")
    parser.add_argument("--gpu-gib", type=float, default=14.5,
                        help="GPU memory PyTorch can use, GiB (default 14.5: a 16 GB T4 reports 14.5-14.75)")
    parser.add_argument("--margin", type=float, default=0.2, help="share of it held back (default 0.2)")
    parser.add_argument("--gpu-batch", type=int, default=32, help="batch of the measured CUDA step (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results",
                        help="where image_sizes.json and image_sizes.md go (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error("--batch must be 2 or more (at batch 1 some reshapes are views, not copies)")
    if not 0 <= args.margin < 1:
        parser.error("--margin must be in [0, 1)")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or ([32] if args.quick else [32, 64, 128])
    models = course_models()
    unknown = sorted(set(args.models or []) - set(models))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(models)}")
    chosen = {name: config for name, config in models.items() if args.models is None or name in args.models}
    device = torch.device("cuda") if torch.cuda.is_available() else None
    args.device_type = device.type if device is not None else "cpu"
    print(machine_header("UNet parameters, FLOPs and training memory by image size", torch.device("cpu"),
                         SIZES["quick" if args.quick else "full"],
                         timing="not timed: FLOPs and bytes are counted (on the CPU), not clocked"))
    print(f"GPU:      {torch.cuda.get_device_name(device) if device is not None else NOT_MEASURED}")
    usable = args.gpu_gib * (1 - args.margin) * 2**30
    jobs = [(name, at_size(chosen[name], size)) for name in chosen for size in sizes]
    rows = [measure_model(name, config, batch=args.batch, usable_bytes=usable, gpu_batch=args.gpu_batch,
                          device=device, seed=args.seed)
            for name, config in tqdm(jobs, desc="model × size")]
    print()
    print_table([dict(zip(COLUMNS, _cells(row))) for row in rows], COLUMNS)
    print()
    for note in notes(args):
        print(f"* {note}")
    if not all(row["flops_linear_in_batch"] for row in rows):
        print("WARNING: the forward FLOPs are not linear in the batch for "
              + ", ".join(f"{r['model']} {r['image_size']} px" for r in rows if not r["flops_linear_in_batch"]))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/image_sizes.py", *(sys.argv[1:] if argv is None else argv)])
    payload = {"rows": rows, "notes": notes(args), "estimate": ESTIMATE_NOTE, "gpu_gib": args.gpu_gib,
               "margin": args.margin, "bytes_per_parameter": BYTES_PER_PARAMETER, "batch_counted": args.batch,
               "command": command,
               "machine": machine_header("image_sizes", torch.device("cpu"), SIZES["full"]).splitlines()[1:4]}
    json_path, md_path = args.out_dir / "image_sizes.json", args.out_dir / "image_sizes.md"
    json_path.write_text(json.dumps(payload, indent=2))
    md_path.write_text(markdown(rows, args, command))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
