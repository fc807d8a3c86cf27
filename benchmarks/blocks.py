"""UNet block variants at an equal parameter count and an equal wall-clock budget (notebook 03 §10,
issue 19): the course's ResBlock UNet, the same with BigGAN up/down ResBlocks, and a ConvNeXt UNet.

    python benchmarks/blocks.py                  # 15 minutes of training each, N=1000 (about an hour on 2 cores)
    python benchmarks/blocks.py --quick          # 1 minute each, N=200, no compile probe
    python benchmarks/blocks.py --resume --sample-seed 1 --out benchmarks/results/blocks_seed1.json   # another sampling seed

Every variant is trained by the ordinary command line from the CPU fast path (``--preset cpu-fast``:
levels 28-14-7, one block per level, attention at 7×7, no dropout, batch 64, lr 1e-3, warm-up 100,
EMA 0.995, bf16 where the CPU has it natively, the cosine fitted to the budget), unconditional, from
the same seed (so the same data order), with only the flags of its row changed:

* ``resnet``:            base 32 (the preset itself);
* ``resnet + BigGAN``:   ``--resblock-updown``, base 30 and 6 GroupNorm groups (5 channels per group,
                         as near the preset's 4 as base 30 allows): the four resampling ResBlocks
                         would otherwise add 13% parameters;
* ``convnext``:          ``--block convnext``, base 24 (its 3×3 bottleneck convs are twice as wide).

The three land within ±5% of one parameter count (checked before anything is trained, and again on
the trained checkpoints).  What follows from the narrower bases and is not matched: the time
embedding is 4·base wide (128 / 120 / 96), attention keeps 4 heads (head width 16 / 15 / 12), and the
ConvNeXt UNet's attention and output GroupNorms keep 8 groups (3 and 6 channels per group).

torch.compile: at full size a probe times 30 optimizer steps of each variant eager and compiled
(after 5 and 15 warm-up steps, steady state only: the compile time itself is not weighed, and the
probe fills inductor's cache, so the training run's own compile is short) and each variant trains
with its faster setting, because the budget is wall-clock time and compile helps on some CPUs and
hurts on others; ``--compile on|off`` fixes it for all.  The "train img/s" column is steps × batch
over the whole budget (compile included), not the probe's steady-state rate, which is shown beside it.

Then each samples N images with DDIM-50 (η=0, x̂_0 clipped), from the same seed, and is scored by
classifier-FID against the test set with the real-vs-real floor at N.  Writes ``--out`` (JSON), the
table as markdown next to it, and a PNG of each variant's samples.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (SIZES, add_trained_comparison_arguments, finish_trained_comparison_arguments,  # noqa: E402
                               machine_header, run_training_command, save_sample_panels, shown_command)
from benchmarks.quality_tables import generate  # noqa: E402
from ddpm_teach.checkpoint import load_diffusion_model  # noqa: E402
from ddpm_teach.devices import pick_device  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.samplers import DDIMSampler  # noqa: E402
from ddpm_teach.training import preset_configs  # noqa: E402
from ddpm_teach.unet import UNet  # noqa: E402

# each variant's UNetConfig fields on top of `--preset cpu-fast` (its `train` flags are made from them)
VARIANTS = {
    "resnet": {},
    "resnet + BigGAN": {"resblock_updown": True, "base_channels": 30, "norm_groups": 6},
    "convnext": {"block": "convnext", "base_channels": 24},
}
PARAM_TOLERANCE = 0.05


def slug(variant: str) -> str:
    return variant.replace(" + ", "_").replace(" ", "_").lower()


def variant_flags(variant: str) -> list[str]:
    """The variant's fields as `train` flags, e.g. ["--resblock-updown", "--base-channels", "30", ...]."""
    flags = []
    for name, value in VARIANTS[variant].items():
        flag = "--" + name.replace("_", "-")
        flags += ([flag] if value else ["--no-" + flag[2:]]) if isinstance(value, bool) else [flag, str(value)]
    return flags


def variant_configs(variant: str, **train_overrides):
    """The variant's (TrainConfig, UNetConfig), as `train --preset cpu-fast` builds them for Fashion-MNIST."""
    return preset_configs("cpu-fast", image_size=28, in_channels=1, **VARIANTS[variant], **train_overrides)


def check_parameter_counts(variants: list[str]) -> dict[str, int]:
    """Every variant's parameter count, after checking that they lie within ±5% of the first."""
    counts = {v: UNet(variant_configs(v)[1]).num_parameters() for v in variants}
    reference = counts[variants[0]]
    for variant, count in counts.items():
        if abs(count / reference - 1) > PARAM_TOLERANCE:
            raise SystemExit(f"{variant} has {count:,} parameters, {100 * (count / reference - 1):+.1f}% against "
                             f"{variants[0]}'s {reference:,}: outside ±{100 * PARAM_TOLERANCE:.0f}%; change its "
                             "base channels in VARIANTS")
    return counts


def probe_compile(variant: str, data, steps: int = 30) -> dict:
    """Steady-state training img/s of the variant eager and compiled (Trainer.run_step at the
    preset's batch, after 5 eager / 15 compiled warm-up steps)."""
    from ddpm_teach.trainer import Trainer

    result = {}
    for compiled in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            config, unet = variant_configs(variant, compile=compiled, out_dir=tmp)
            trainer = Trainer(config, unet, data)
            for _ in range(15 if compiled else 5):
                trainer.run_step()
            start = time.perf_counter()
            for _ in range(steps):
                trainer.run_step()
            result["compiled" if compiled else "eager"] = round(steps * config.batch_size / (time.perf_counter() - start), 1)
    print(f"probe {variant}: {result['eager']:.0f} img/s eager, {result['compiled']:.0f} compiled", flush=True)
    return result


def train_command(variant: str, args, compiled: bool) -> list[str]:
    command = [sys.executable, "-m", "ddpm_teach", "train", "--preset", "cpu-fast", "--max-minutes", f"{args.minutes:g}",
               "--seed", str(args.seed), "--out-dir", str(Path(args.runs_dir) / slug(variant)), "--overwrite",
               "--compile" if compiled else "--no-compile", "--no-probe-setup", *variant_flags(variant)]
    return command + list(args.extra_train_flags)


def _without_compile(command: str) -> str:
    return " ".join(word for word in command.split() if word not in ("--compile", "--no-compile"))


def kept_run(variant: str, args) -> dict | None:
    """With --resume: the finished run of this variant made by the same command (with compile on
    or off, as its probe chose, unless --compile on|off fixes it), or None."""
    path = Path(args.runs_dir) / slug(variant) / "checkpoint.pt"
    info_path = path.parent / "benchmark_train.json"
    if not (path.is_file() and info_path.is_file()):
        return None
    info = json.loads(info_path.read_text())
    if args.compile == "probe":
        same = _without_compile(info["command"]) == _without_compile(shown_command(train_command(variant, args, False)))
    else:
        same = info["command"] == shown_command(train_command(variant, args, args.compile == "on"))
    return info if same else None


def train(variant: str, args, compiled: bool) -> dict:
    """Train one variant by the command line; its command and wall time go next to the run."""
    path = Path(args.runs_dir) / slug(variant) / "checkpoint.pt"
    info_path = path.parent / "benchmark_train.json"
    print(f"{variant}: ", end="")
    return run_training_command(train_command(variant, args, compiled), info_path,
                                path.parent.parent / f"{slug(variant)}.log", args.verbose)


def measure(variant: str, args, evaluator: Evaluator, device) -> tuple[dict, torch.Tensor]:
    """Sample N images with DDIM-50 from --sample-seed (timed) and score them."""
    path = Path(args.runs_dir) / slug(variant) / "checkpoint.pt"
    model, schedule, ckpt = load_diffusion_model(path, device=device)
    sampler = DDIMSampler(schedule, steps=args.sample_steps)
    seed = args.seed if args.sample_seed is None else args.sample_seed
    generate(model, DDIMSampler(schedule, steps=2), 2, 2, device, seed, precision=args.precision)   # warm-up, untimed
    started = time.perf_counter()
    images = generate(model, sampler, args.n, args.batch_size, device, seed, precision=args.precision)
    seconds = time.perf_counter() - started
    scores = evaluator.score(images)
    tc = ckpt["train_config"]
    row = {"variant": variant, "params": model.num_parameters(), "train_minutes": tc["max_minutes"],
           "compile": tc["compile"], "steps": int(ckpt["step"]),
           "train_img_per_s": round(ckpt["step"] * tc["batch_size"] / (60 * tc["max_minutes"]), 1),
           "sample_s_per_1000": round(seconds * 1000 / args.n, 1), "n": args.n, "sample_seed": seed,
           "fid": scores["fid"], "fid_floor": scores["fid_floor"]}
    return row, images


def markdown(rows: list[dict], sample_steps: int) -> str:
    lines = ["| variant | params | compile | train min | steps | train img/s: steps × batch / budget (probe: eager / compiled) "
             f"| sample s / 1000 (DDIM-{sample_steps}) | classifier-FID (floor) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        probe = r.get("probe")
        probe_text = f" ({probe['eager']:.0f} / {probe['compiled']:.0f})" if probe else ""
        lines.append(f"| {r['variant']} | {r['params'] / 1e6:.3f}M | {'yes' if r['compile'] else 'no'} | "
                     f"{r['train_minutes']:g} | {r['steps']:,} | {r['train_img_per_s']:.0f}{probe_text} | "
                     f"{r['sample_s_per_1000']:.1f} | {r['fid']:.3f} ({r['fid_floor']:.3f}) |")
    return "\n".join(lines) + "\n"


def ratio_lines(rows: list[dict]) -> list[str]:
    base = rows[0]
    return [f"ratio {r['variant']}/{base['variant']}: train img/s {r['train_img_per_s'] / base['train_img_per_s']:.2f}, "
            f"classifier-FID {r['fid'] / base['fid']:.2f}, sampling time {r['sample_s_per_1000'] / base['sample_s_per_1000']:.2f}"
            for r in rows[1:]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 minute each, N=200, no compile probe (eager)")
    add_trained_comparison_arguments(parser, "variant")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--compile", choices=["probe", "on", "off"], default=None,
                        help="torch.compile while training: probe (each variant's faster setting; the default), "
                             "on or off for all (--quick: off)")
    parser.add_argument("--runs-dir", default=None, help="where the training runs go (default runs/blocks; "
                                                          "--quick: runs/blocks_quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON (default benchmarks/results/blocks.json; --quick: runs/blocks_quick.json)")
    args = parser.parse_args(argv)
    finish_trained_comparison_arguments(args)
    args.compile = args.compile or ("off" if args.quick else "probe")
    args.runs_dir = args.runs_dir or str(ROOT / "runs" / ("blocks_quick" if args.quick else "blocks"))
    args.out = args.out or (ROOT / "runs" / "blocks_quick.json" if args.quick
                            else ROOT / "benchmarks" / "results" / "blocks.json")
    if args.out.suffix != ".json":
        parser.error(f"--out {args.out} must end in .json (the markdown and PNG go next to it)")
    counts = check_parameter_counts(args.variants)
    device = pick_device("auto")
    print(machine_header("UNet block variants at equal parameters and equal training time", device,
                         SIZES["quick" if args.quick else "full"],
                         timing=f"{args.minutes:g} min of training per variant, one after the other; sampling timed once"))
    print("parameters: " + ", ".join(f"{v} {c:,}" for v, c in counts.items()), flush=True)

    kept = {v: kept_run(v, args) for v in args.variants} if args.resume else {}
    probes = {v: info["probe"] for v, info in kept.items() if info and "probe" in info}
    to_probe = [v for v in args.variants if not kept.get(v)] if args.compile == "probe" else []
    if to_probe:
        from ddpm_teach.data import load_dataset
        data = load_dataset("fashion_mnist")
        probes.update({v: probe_compile(v, data) for v in to_probe})
    trained = {}
    for variant in args.variants:
        if kept.get(variant):
            print(f"{variant}: keeping {Path(args.runs_dir) / slug(variant)} (--resume)")
            trained[variant] = kept[variant]
            continue
        compiled = (probes[variant]["compiled"] > probes[variant]["eager"] if args.compile == "probe"
                    else args.compile == "on")
        trained[variant] = train(variant, args, compiled)
        if variant in probes:
            trained[variant]["probe"] = probes[variant]
            (Path(args.runs_dir) / slug(variant) / "benchmark_train.json").write_text(json.dumps(trained[variant]))

    evaluator = Evaluator.load(device=device)
    rows, images = [], {}
    for variant in args.variants:
        row, images[variant] = measure(variant, args, evaluator, device)
        row.update(train_command=trained[variant]["command"], train_wall_s=trained[variant]["wall_s"],
                   **({"probe": trained[variant]["probe"]} if "probe" in trained[variant] else {}))
        print(f"{variant}: {row['steps']:,} steps, FID {row['fid']:.3f} (floor {row['fid_floor']:.3f}, N={row['n']})",
              flush=True)
        rows.append(row)
    spread = max(abs(r["params"] / rows[0]["params"] - 1) for r in rows)
    print(f"parameters of the trained models: at most {100 * spread:.1f}% from {rows[0]['variant']}'s"
          + (" -- OUTSIDE ±5%" if spread > PARAM_TOLERANCE else ""))
    table = markdown(rows, args.sample_steps)
    print()
    print(table)
    lines = ratio_lines(rows)
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"rows": rows, "ratios": lines, "param_spread": round(spread, 4), "seed": args.seed, "sample_seed": args.sample_seed,
               "precision": args.precision, "sampler": f"DDIM-{args.sample_steps}, eta 0, x0 clipped",
               "command": "python benchmarks/blocks.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": machine_header("blocks", device, SIZES["full"]).splitlines()[1:4]}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(args.out)
    args.out.with_suffix(".md").write_text(table)
    png = save_sample_panels({f"{r['variant']} ({r['steps']:,} steps)": images[r["variant"]][:48] for r in rows},
                             args.out.with_suffix(".png"), nrow=8)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
