"""Latent diffusion against pixel-space diffusion at an equal wall-clock training budget
(notebook 10, issue 15).

    python benchmarks/latent_vs_pixel.py                 # 15 minutes of training each, N=1000 (about 40 min on 2 cores)
    python benchmarks/latent_vs_pixel.py --quick         # 1 minute each, N=200
    python benchmarks/latent_vs_pixel.py --resume        # keep the finished training runs, measure again

Both sides are class-conditional with label dropout 0.1 and are trained by the ordinary command
line (the commands are printed and stored in the JSON), from the CPU fast path
(``--preset cpu-fast``: batch 64, lr 1e-3, EMA 0.995, bf16 where the CPU has it natively):

* **pixel**: the preset's UNet (base 32, levels 28-14-7, attention at 7×7, 1.11M parameters) on
  28×28×1 images;
* **latent**: the same UNet class on the autoencoder's 7×7×c latents, one level (7×7 cannot be
  halved), base 64, two ResBlocks, attention at 7×7: 0.96M parameters, about the same size.

Each trains for ``--minutes`` (the cosine fitted to the budget).  Then each samples N images
with DDIM-50 (η=0; x̂_0 clipped in pixel space, not in latent space), classes cycling, guidance
s=2, from the same seed; the sampling time covers the whole loop and, for the latent model, the
decoder.  Scores: classifier-FID against the test set with the real-vs-real floor at N, and the
conditional accuracy.  The autoencoder's own training time (from its checkpoint) is reported
separately and added in the "total" column.  A row for the autoencoder's reconstructions of
N test images gives the ceiling the latent model can reach.

Writes ``--out`` (JSON), the same table as markdown next to it, and a PNG of both models' samples.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (SIZES, add_trained_comparison_arguments, finish_trained_comparison_arguments,  # noqa: E402
                               machine_header, run_training_command, save_sample_panels, shown_command)
from ddpm_teach.autoencoder import load_autoencoder, reconstruction_scores  # noqa: E402
from ddpm_teach.checkpoint import load_diffusion_model  # noqa: E402
from ddpm_teach.data import load_dataset, to_model_range  # noqa: E402
from ddpm_teach.devices import pick_device  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.latent import codec_from_checkpoint  # noqa: E402
from ddpm_teach.samplers import DDIMSampler, sample  # noqa: E402

DEFAULT_AE = ROOT / "checkpoints" / "fashion_mnist_autoencoder.pt"
LATENT_UNET = ["--channel-mults", "1", "--base-channels", "64", "--num-res-blocks", "2", "--attention-resolutions", "7"]


def train_command(side: str, args) -> list[str]:
    """The `python -m ddpm_teach train` command of one side."""
    command = [sys.executable, "-m", "ddpm_teach", "train", "--preset", "cpu-fast", "--conditional",
               "--max-minutes", f"{args.minutes:g}", "--seed", str(args.seed),
               "--out-dir", str(Path(args.runs_dir) / side), "--overwrite"]
    if not args.compile:
        command.append("--no-compile")
    if side == "latent":
        command += ["--autoencoder", str(args.autoencoder), *LATENT_UNET]
    return command + list(args.extra_train_flags)


def train(side: str, args) -> dict:
    """Train one side (or, with --resume, keep its finished run) and say what it cost."""
    path = Path(args.runs_dir) / side / "checkpoint.pt"
    command = train_command(side, args)
    shown = shown_command(command)
    absolute = " ".join(shlex.quote(c) for c in ["python", *command[1:]])        # as runs before 2026-12-07 stored it
    info_path = path.parent / "benchmark_train.json"
    if args.resume and path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("command") in (shown, absolute):
            print(f"{side}: keeping {path} (--resume)")
            return info
    print(f"{side}: ", end="")
    return run_training_command(command, info_path, path.parent.parent / f"{side}.log", args.verbose)


def measure(side: str, args, evaluator: Evaluator, device) -> tuple[dict, torch.Tensor]:
    """Sample N images with DDIM-50 at s=--guidance-scale, timed (decode included), and score them."""
    path = Path(args.runs_dir) / side / "checkpoint.pt"
    model, schedule, ckpt = load_diffusion_model(path, device=device)
    codec = codec_from_checkpoint(ckpt, str(path), device)
    sampler = DDIMSampler(schedule, steps=args.sample_steps, clip_x0=codec is None)
    labels = torch.arange(args.n) % model.config.num_classes
    generator = torch.Generator().manual_seed(args.seed if args.sample_seed is None else args.sample_seed)
    started = time.perf_counter()
    chunks = []
    for start in range(0, args.n, args.batch_size):
        part = labels[start:start + args.batch_size]
        out = sample(model, sampler, len(part), labels=part, guidance_scale=args.guidance_scale, generator=generator,
                     device=device, progress=False, precision=args.precision)
        chunks.append((codec.decode(out) if codec is not None else out).cpu())
    seconds = time.perf_counter() - started
    images = torch.cat(chunks)
    scores = evaluator.score(images, labels)
    tc = ckpt["train_config"]
    row = {"model": side, "params": model.num_parameters(), "input": list(images.shape[1:]) if codec is None
           else list(codec.latent_shape), "train_minutes": tc["max_minutes"], "steps": int(ckpt["step"]),
           "train_img_per_s": round(ckpt["step"] * tc["batch_size"] / (60 * tc["max_minutes"]), 1),
           "sample_s_per_1000": round(seconds * 1000 / args.n, 1), "n": args.n, "fid": scores["fid"],
           "fid_floor": scores["fid_floor"], "accuracy": scores["accuracy"]}
    return row, images


def autoencoder_row(args, evaluator: Evaluator, device) -> dict:
    """The autoencoder's training time (from its checkpoint) and its reconstructions of N test images."""
    model, _, ae_ckpt = load_autoencoder(args.autoencoder, device=device)
    test = load_dataset("fashion_mnist", train=False)
    scores = reconstruction_scores(model, evaluator, to_model_range(test.images), n=args.n, seed=args.seed, device=device)
    return {"model": "autoencoder reconstructions", "params": model.num_parameters(),
            "input": list(model.config.latent_shape), "train_minutes": round(ae_ckpt["train_seconds"] / 60, 2),
            "steps": int(ae_ckpt["steps"]), "n": args.n, "fid": scores["fid"], "fid_floor": scores["fid_floor"],
            "mse": scores["mse"]}


def markdown(rows: list[dict], ae: dict) -> str:
    lines = ["| model | params | trains on | train min | steps | train img/s | + autoencoder min | total min "
             "| sample s / 1000 (decode incl.) | classifier-FID (floor) | accuracy at s=2 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = ae["train_minutes"] if r["model"] == "latent" else 0.0
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {'×'.join(map(str, r['input']))} | "
                     f"{r['train_minutes']:g} | {r['steps']:,} | {r['train_img_per_s']:.0f} | "
                     f"{extra:.1f} | {r['train_minutes'] + extra:.1f} | {r['sample_s_per_1000']:.1f} | "
                     f"{r['fid']:.2f} ({r['fid_floor']:.2f}) | {100 * r['accuracy']:.1f}% |")
    lines.append(f"| {ae['model']} (the ceiling) | {ae['params'] / 1e6:.2f}M | {'×'.join(map(str, ae['input']))} | "
                 f"{ae['train_minutes']:.1f} | {ae['steps']:,} | | | | | {ae['fid']:.2f} ({ae['fid_floor']:.2f}) | |")
    return "\n".join(lines) + "\n"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a (a side trained 0 steps: its budget went to start-up; raise --minutes)"


def ratio_lines(rows: list[dict]) -> list[str]:
    pixel, latent = (next(r for r in rows if r["model"] == m) for m in ("pixel", "latent"))
    return [f"ratio latent/pixel training img/s: {_ratio(latent['train_img_per_s'], pixel['train_img_per_s'])}",
            f"ratio pixel/latent sampling time (decode included): {pixel['sample_s_per_1000'] / latent['sample_s_per_1000']:.2f}",
            f"ratio latent/pixel classifier-FID: {latent['fid'] / pixel['fid']:.2f}",
            f"accuracy at s={{s}}: latent {100 * latent['accuracy']:.1f}%, pixel {100 * pixel['accuracy']:.1f}%"]


def plot(images: dict[str, torch.Tensor], path: Path, per_class: int = 6) -> Path:
    """Each model's first ``per_class`` samples of every class, one row per class."""
    order = lambda x: torch.cat([torch.arange(k, len(x), 10)[:per_class] for k in range(10)])   # noqa: E731
    return save_sample_panels({name: x[order(x)] for name, x in images.items()}, path, nrow=per_class, height=4.6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 minute each, N=200")
    add_trained_comparison_arguments(parser, "side")
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.compile both sides while training (the preset's choice; --no-compile for eager)")
    parser.add_argument("--autoencoder", type=Path, default=DEFAULT_AE)
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "latent_vs_pixel"))
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON (default benchmarks/results/latent_vs_pixel.json; --quick: runs/latent_vs_pixel_quick.json)")
    args = parser.parse_args(argv)
    finish_trained_comparison_arguments(args)
    args.out = args.out or (ROOT / "runs" / "latent_vs_pixel_quick.json" if args.quick
                            else ROOT / "benchmarks" / "results" / "latent_vs_pixel.json")
    if not Path(args.autoencoder).is_file():
        raise SystemExit(f"--autoencoder {args.autoencoder} does not exist: train one with "
                         "`python -m ddpm_teach train-autoencoder` (the shipped one is checkpoints/fashion_mnist_autoencoder.pt)")
    device = pick_device("auto")
    print(machine_header("latent vs pixel diffusion at an equal training budget", device, SIZES["quick" if args.quick else "full"],
                         timing=f"{args.minutes:g} min of training per side, one after the other; sampling timed once"))
    trained = {side: train(side, args) for side in ("pixel", "latent")}
    evaluator = Evaluator.load(device=device)
    rows, images = [], {}
    for side in ("pixel", "latent"):
        row, images[side] = measure(side, args, evaluator, device)
        row["train_command"], row["train_wall_s"] = trained[side]["command"], trained[side]["wall_s"]
        rows.append(row)
    ae = autoencoder_row(args, evaluator, device)
    table = markdown(rows, ae)
    print(table)
    lines = [line.replace("{s}", f"{args.guidance_scale:g}") for line in ratio_lines(rows)]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"rows": rows, "autoencoder": ae, "ratios": lines, "seed": args.seed, "sample_seed": args.sample_seed,
               "precision": args.precision,
               "sampler": f"DDIM-{args.sample_steps}, eta 0, s={args.guidance_scale:g}"}
    payload["machine"] = machine_header("latent vs pixel", device, SIZES["full"]).splitlines()[1:4]
    args.out.write_text(json.dumps(payload, indent=2))
    args.out.with_suffix(".md").write_text(table)
    png = plot({f"pixel space ({rows[0]['train_minutes']:g} min)": images["pixel"],
                f"latent space ({rows[1]['train_minutes']:g} min + autoencoder)": images["latent"]},
               args.out.with_suffix(".png"))
    print(f"wrote {args.out}, {args.out.with_suffix('.md')} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
