"""Choosing the autoencoder's latent channels c (notebook 10, issue 15): reconstruction quality
against the size of the latent, at an equal training budget.

    python benchmarks/autoencoder_sweep.py            # c = 2, 4, 8 (L1 + KL) and c = 4 (+ perceptual), 5 min each
    python benchmarks/autoencoder_sweep.py --quick    # 0.2 min each, N=200
    python benchmarks/autoencoder_sweep.py --resume   # keep the variants already trained with the same command

Every variant is trained by ``python -m ddpm_teach train-autoencoder`` (f = 4, so 28×28×1 → 7×7×c)
for the same ``--minutes``, one after the other, and scores its reconstructions of N test images:
per-pixel MSE, and classifier-FID against the test set, printed beside the FID of the same N test
images unreconstructed and the real-vs-real floor at N.

The perceptual variant adds the shipped Fashion-MNIST classifier's feature distance to the loss.
That classifier is also the one that computes the FID, so part of its gain may be the loss
matching the metric's own features; its MSE (which the perceptual term does not target) says
what happens to the pixels.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddpm_teach.autoencoder import AutoencoderConfig  # noqa: E402
from ddpm_teach.checkpoint import load_checkpoint  # noqa: E402

VARIANTS = (("c2", 2, 0.0), ("c4", 4, 0.0), ("c8", 8, 0.0), ("c4_perceptual", 4, 1.0))


def command(name: str, channels: int, perceptual: float, args) -> list[str]:
    return [sys.executable, "-m", "ddpm_teach", "train-autoencoder", "--latent-channels", str(channels),
            "--perceptual-weight", f"{perceptual:g}", "--steps", "100000", "--max-minutes", f"{args.minutes:g}",
            "--eval-n", str(args.n), "--seed", str(args.seed), "--out", str(Path(args.runs_dir) / f"{name}.pt"),
            "--overwrite"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.2 minutes each, N=200")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per variant (default 5)")
    parser.add_argument("--n", type=int, default=None, help="test images reconstructed and scored (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "ae_sweep"))
    parser.add_argument("--resume", action="store_true", help="keep a variant whose checkpoint was made by the same command")
    parser.add_argument("--variants", nargs="+", choices=[v[0] for v in VARIANTS], default=[v[0] for v in VARIANTS],
                        help="which variants to run (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON (default benchmarks/results/autoencoder_sweep.json; --quick: runs/autoencoder_sweep_quick.json)")
    args = parser.parse_args(argv)
    args.minutes = args.minutes or (0.2 if args.quick else 5.0)
    args.n = args.n or (200 if args.quick else 1000)
    args.out = args.out or (ROOT / "runs" / "autoencoder_sweep_quick.json" if args.quick
                            else ROOT / "benchmarks" / "results" / "autoencoder_sweep.json")
    rows = []
    for name, channels, perceptual in (v for v in VARIANTS if v[0] in args.variants):
        cmd = command(name, channels, perceptual, args)
        path = Path(cmd[cmd.index("--out") + 1])
        shown = " ".join(shlex.quote(c) for c in ["python", *cmd[1:-1]])       # without --overwrite
        ckpt = load_checkpoint(path, kind="autoencoder") if args.resume and path.is_file() else None
        same = ckpt is not None and ckpt["train_config"]["latent_channels"] == channels and \
            ckpt["train_config"]["perceptual_weight"] == perceptual and ckpt["train_config"]["max_minutes"] == args.minutes \
            and ckpt.get("scores", {}).get("n") == args.n
        if not same:
            print(shown, flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            ckpt = load_checkpoint(path, kind="autoencoder")
        else:
            print(f"{name}: keeping {path} (--resume)")
        s = ckpt["scores"]
        c, h, w = AutoencoderConfig.from_dict(ckpt["model_config"]).latent_shape
        rows.append({"variant": name, "latent_channels": c, "latent_side": h, "latent_numbers": c * h * w, "perceptual_weight": perceptual,
                     "minutes": ckpt["train_config"]["max_minutes"], "steps": ckpt["steps"], "n": s["n"],
                     "mse": s["mse"], "fid": s["fid"], "fid_originals": s["fid_originals"], "fid_floor": s["fid_floor"],
                     "command": shown})
    print("| variant | latent | numbers (of 784) | perceptual | steps | MSE | classifier-FID | unreconstructed | floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['latent_channels']}×{r['latent_side']}×{r['latent_side']} | {r['latent_numbers']} | {r['perceptual_weight']:g} | "
              f"{r['steps']:,} | {r['mse']:.4f} | {r['fid']:.3f} | {r['fid_originals']:.3f} | {r['fid_floor']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "n": args.n, "minutes": args.minutes}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
