"""The scores of the shipped colour model (notebook 12, checkpoints/README.md): classifier-FID
against the held-out emoji and conditional accuracy, at several guidance scales, with N, the
real-vs-real floor and the spread over two sampling seeds; and the sample grid of the README.

    python -m ddpm_teach data emoji --out data/emoji --size 32        # once
    python benchmarks/emoji_guidance.py                                # N=450 per scale and seed, 4 scales, 2 seeds
    python benchmarks/emoji_guidance.py --quick                        # N=90, 2 scales, one seed, DDIM-10

Every scale samples the same number of images of every category (``--labels all``: image i asks
for category i mod 9), with DDIM and the same noise for every scale (per seed), so the rows differ
only in the guidance scale.  The scores use the shipped emoji classifier
(checkpoints/emoji_classifier.pt), whose FID reference is data/emoji/test: a few hundred images,
so the floor (real training images against it) is far from zero and must be read with the FID.
Writes ``--out`` (JSON), the same name with .md (a table), and a grid PNG (one row per category,
``--grid-scale``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import SIZES, machine_header  # noqa: E402
from ddpm_teach.checkpoint import load_diffusion_model  # noqa: E402
from ddpm_teach.devices import pick_device  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.files import check_output_file  # noqa: E402
from ddpm_teach.plotting import save_image_grid  # noqa: E402
from ddpm_teach.samplers import DDIMSampler, sample  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=90, scales 1 and 3, one seed, DDIM-10 (a minute)")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "emoji_cfg.pt"))
    parser.add_argument("--classifier", default=str(ROOT / "checkpoints" / "emoji_classifier.pt"))
    parser.add_argument("--dataset", default=None, help="the emoji folder (default: the classifier's, data/emoji)")
    parser.add_argument("--n", type=int, default=None, help="samples per scale and seed (default 450; --quick 90)")
    parser.add_argument("--scales", type=float, nargs="+", default=None, help="guidance scales (default 1 2 3 5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="sampling seeds (default 0 1)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 50; --quick 10)")
    parser.add_argument("--batch-size", type=int, default=225)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--grid-scale", type=float, default=3.0, help="the guidance scale of the grid PNG")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "emoji_guidance.json"))
    args = parser.parse_args(argv)
    args.n = args.n or (90 if args.quick else 450)
    args.scales = args.scales or ([1.0, 3.0] if args.quick else [1.0, 2.0, 3.0, 5.0])
    args.seeds = args.seeds or ([0] if args.quick else [0, 1])
    args.steps = args.steps or (10 if args.quick else 50)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = check_output_file(args.out, "--out")
    md, grid = out.with_suffix(".md"), out.with_name(out.stem + "_grid.png")
    for path, flag in ((md, "--out (.md)"), (grid, "--out (_grid.png)")):
        check_output_file(path, flag)
    device = pick_device(args.device)
    print(machine_header("emoji: guidance scale against FID and conditional accuracy", device,
                         SIZES["quick" if args.quick else "full"], timing="wall clock of each row's sampling"))
    model, schedule, ckpt = load_diffusion_model(args.checkpoint, device=device)
    evaluator = Evaluator.load(args.classifier, device=device, dataset=args.dataset)
    classes = evaluator.classes
    if ckpt.get("dataset", {}).get("classes") != classes:
        raise SystemExit(f"error: {args.checkpoint} was trained on the classes {ckpt.get('dataset', {}).get('classes')}, "
                         f"the classifier knows {classes}")
    sampler = DDIMSampler(schedule, steps=args.steps)
    labels = torch.arange(args.n) % len(classes)
    rows = []
    for scale in args.scales:
        for seed in args.seeds:
            generator = torch.Generator().manual_seed(seed)
            started = time.perf_counter()
            images = torch.cat([sample(model, sampler, len(labels[i:i + args.batch_size]),
                                       labels=labels[i:i + args.batch_size], guidance_scale=scale,
                                       generator=generator, device=device, progress=False,
                                       precision=args.precision).cpu()
                                for i in range(0, args.n, args.batch_size)])
            seconds = time.perf_counter() - started
            scores = evaluator.score(images, labels)
            rows.append({"scale": scale, "seed": seed, "n": args.n, "fid": scores["fid"], "fid_floor": scores["fid_floor"],
                         "fid_floor_n": scores["fid_floor_n"], "accuracy": scores["accuracy"],
                         "accuracy_per_class": scores["accuracy_per_class"], "seconds": seconds})
            print(f"s={scale:g} seed {seed}: {Evaluator.format_scores(scores)}  ({seconds:.0f} s)", flush=True)
            if scale == args.grid_scale and seed == args.seeds[0]:
                order = torch.cat([torch.nonzero(labels == k)[:10, 0] for k in range(len(classes))])
                save_image_grid(images[order], grid, nrow=10)
    summary = []
    for scale in args.scales:
        mine = [r for r in rows if r["scale"] == scale]
        fids, accs = [r["fid"] for r in mine], [r["accuracy"] for r in mine]
        summary.append({"scale": scale, "fid_mean": statistics.fmean(fids), "fid_spread": max(fids) - min(fids),
                        "accuracy_mean": statistics.fmean(accs), "accuracy_spread": max(accs) - min(accs)})
    best = max(summary, key=lambda r: r["accuracy_mean"])
    result = {"checkpoint": str(Path(args.checkpoint).relative_to(ROOT) if Path(args.checkpoint).is_relative_to(ROOT) else args.checkpoint),
              "classifier_test_accuracy": torch.load(args.classifier, weights_only=True).get("test_accuracy"),
              "sampler": f"DDIM-{args.steps}, eta 0, clipped x0, {args.precision}", "n": args.n, "seeds": args.seeds,
              "classes": classes, "floor": {"n": rows[0]["fid_floor_n"], "fid": rows[0]["fid_floor"]},
              "rows": rows, "summary": summary, "best_scale": best["scale"],
              "command": "python benchmarks/emoji_guidance.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine_header("", device, SIZES["full"]).splitlines()[1:4]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    lines = [f"| guidance scale s | classifier-FID (N={args.n}, mean of seeds {args.seeds}) | seed spread | "
             f"conditional accuracy | seed spread |", "|---|---|---|---|---|"]
    lines += [f"| {r['scale']:g} | {r['fid_mean']:.2f} | {r['fid_spread']:.2f} | {100 * r['accuracy_mean']:.1f}% | "
              f"{100 * r['accuracy_spread']:.1f} pt |" for r in summary]
    lines.append(f"\nReal-vs-real floor: {rows[0]['fid_floor']:.2f} (N={rows[0]['fid_floor_n']} training emoji against "
                 f"the {len(evaluator.test_features)} held-out ones). Sampler: {result['sampler']}. "
                 f"Classifier held-out accuracy: {100 * result['classifier_test_accuracy']:.1f}%. Command: `{result['command']}`.")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"best conditional accuracy at s={best['scale']:g}: {100 * best['accuracy_mean']:.1f}%; wrote {out}, {md}, {grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
