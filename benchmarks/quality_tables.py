"""The result tables of the README and of notebooks 05-08: classifier-FID (and conditional
accuracy) of the shipped checkpoints under every sampler setting, with N and the real-vs-real
floor stated.

    python benchmarks/quality_tables.py --n 5000 --out benchmarks/results/quality_n5000.json   # the README's tables (GPU: minutes)
    python benchmarks/quality_tables.py --quick                                                # N=100, a subset, CPU-friendly

Tables: DDPM 1000 steps (β and β̃); DDIM 10/20/50/100 steps × η 0/0.5/1; guidance scale s in
{0, 1, 1.5, 2, 3, 5}; learned variance against fixed variance at 25/50/100 DDPM steps.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddpm_teach.checkpoint import load_diffusion_model  # noqa: E402
from ddpm_teach.devices import describe_device, pick_device  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.samplers import DDIMSampler, DDPMSampler, sample  # noqa: E402

CK = ROOT / "checkpoints"


def generate(model, sampler, n, batch_size, device, seed, labels=None, guidance_scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        part = None if labels is None else labels[start:start + m]
        chunks.append(sample(model, sampler, m, labels=part, guidance_scale=guidance_scale, generator=generator,
                             device=device, progress=False).cpu())
    return torch.cat(chunks)


def run(args) -> list[dict]:
    device = pick_device(args.device)
    evaluator = Evaluator.load(device=device)
    rows: list[dict] = []

    def score(table, setting, model, sampler, labels=None, guidance_scale=1.0):
        start = time.perf_counter()
        images = generate(model, sampler, args.n, args.batch_size, device, args.seed, labels, guidance_scale)
        seconds = time.perf_counter() - start
        row = {"table": table, "setting": setting, **evaluator.score(images, labels), "seconds": seconds}
        row.pop("class_histogram", None)
        rows.append(row)
        acc = f"  acc={100 * row['accuracy']:.1f}%" if "accuracy" in row else ""
        print(f"{table:>16} | {setting:<28} | N={row['n']} FID={row['fid']:.3f} (floor {row['fid_floor']:.3f}){acc}"
              f"  [{seconds:.0f} s]", flush=True)
        return row

    uncond, schedule, _ = load_diffusion_model(CK / "fashion_mnist_ddpm.pt", device=device)
    ddpm_steps = [None] if not args.quick else [100]
    for steps in ddpm_steps:
        for variance in ("fixed_small", "fixed_large"):
            name = f"DDPM-{steps or schedule.T} {'β̃' if variance == 'fixed_small' else 'β'}"
            score("ddpm", name, uncond, DDPMSampler(schedule, steps=steps, variance_type=variance))
    for steps in ([10, 20, 50, 100] if not args.quick else [10, 50]):
        for eta in ([0.0, 0.5, 1.0] if not args.quick else [0.0, 1.0]):
            score("ddim", f"DDIM-{steps} η={eta}", uncond, DDIMSampler(schedule, steps=steps, eta=eta))

    cfg_model, cfg_schedule, _ = load_diffusion_model(CK / "fashion_mnist_cfg.pt", device=device)
    labels = torch.arange(args.n) % cfg_model.config.num_classes
    for s in ([0.0, 1.0, 1.5, 2.0, 3.0, 5.0] if not args.quick else [0.0, 1.0, 2.0]):
        score("guidance", f"s={s} (w={s - 1:g}) DDIM-{args.guidance_steps}", cfg_model,
              DDIMSampler(cfg_schedule, steps=args.guidance_steps), labels=labels, guidance_scale=s)

    lv_model, lv_schedule, _ = load_diffusion_model(CK / "fashion_mnist_learned_var.pt", device=device)
    for steps in ([25, 50, 100] if not args.quick else [25]):
        for variance in ("learned_range", "fixed_small", "fixed_large"):
            score("learned_var", f"DDPM-{steps} {variance}", lv_model,
                  DDPMSampler(lv_schedule, steps=steps, variance_type=variance))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="samples per row (the README uses 5000)")
    parser.add_argument("--quick", action="store_true", help="N=100 and a subset of rows")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--guidance-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 100)
    device = pick_device(args.device)
    print(f"# quality tables: N={args.n} per row on {describe_device(device)}, torch {torch.__version__}")
    rows = run(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"n": args.n, "device": describe_device(device), "rows": rows}, indent=2))
    print("\n| table | setting | N | classifier-FID | floor at N | accuracy |\n|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{100 * r['accuracy']:.1f}%" if "accuracy" in r else ""
        print(f"| {r['table']} | {r['setting']} | {r['n']} | {r['fid']:.3f} | {r['fid_floor']:.3f} | {acc} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
