"""Is the CPU fast path's speed bought with quality?  Train the same model twice for the same
number of steps, from the same initial weights, batches and noise: once with the fast path
(bf16 autocast + torch.compile, ``--preset cpu-fast``) and once in plain fp32 eager.  Then sample
both the same way (DDIM-50, fp32) and score them with the same classifier.

    python benchmarks/precision_check.py            # 600 steps each, N=1000 (about 12 minutes on 2 cores)
    python benchmarks/precision_check.py --quick    # 150 steps each, N=256
    python benchmarks/precision_check.py --smoke    # seconds, for the tests

It prints the wall time of each run and ``ratio fp32/fast-path classifier-FID: X``: about 1
means the fast path costs no quality; the FID's own noise at this N is the spread between seeds,
printed alongside from a second sampling seed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import Sizes, add_scoring_run_arguments, machine_header, samples_to_score  # noqa: E402
from benchmarks.fast_path import ddim_ours, fast_path_configs, setup_label  # noqa: E402
from ddpm_teach.data import load_dataset  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.trainer import Trainer  # noqa: E402


def train(data, steps: int, fast: bool, out_dir: str, seed: int, compile: bool = True):
    config, model_config = fast_path_configs(minutes=None, out_dir=out_dir, compile=compile, probe=False)
    config.steps, config.seed = steps, seed
    if not fast:
        config.mixed_precision, config.compile = "no", False
    started = time.perf_counter()
    trainer = Trainer(config, model_config, data=data, overwrite=True)   # a benchmark starts afresh
    trainer.train(progress=True)
    seconds = time.perf_counter() - started
    return trainer.ema.module.eval(), trainer.schedule, setup_label(config), seconds, sum(trainer.loss_history[-50:]) / min(50, steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scoring_run_arguments(parser, quick="150 steps each, N=256", smoke="5 steps each, N=32, no torch.compile")
    parser.add_argument("--steps", type=int, default=None, help="training steps of each run (default 600)")
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.smoke else 150 if args.quick else 600)
    n = samples_to_score(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(machine_header("fast path against fp32 eager at equal steps", device,
                         Sizes("smoke" if args.smoke else "quick" if args.quick else "full", 0, 1, 1, "ours"),
                         timing=f"{steps} training steps each from the same seed, then DDIM-50 (fp32) of N={n}"))
    data = load_dataset("fashion_mnist", args.data_root, train=True)
    evaluator = Evaluator.load(data_root=args.data_root)
    rows = []
    for fast in (True, False):
        model, schedule, label, seconds, loss = train(data, steps, fast, str(ROOT / "runs" / "precision_check"),
                                                      args.seed, compile=not args.smoke)
        fids = [evaluator.score(ddim_ours(model, schedule, n, 250, args.seed + k)[0])["fid"] for k in (1, 2)]
        rows.append((label, seconds, loss, fids))
    floor = evaluator.fid_floor(n)
    print(f"\n{steps} steps of batch 64 each, same seed; DDIM-50 (fp32) of N={n} from the EMA weights, two sampling "
          f"seeds; real-vs-real floor at N={n}: {floor:.2f}")
    header = f"{'training':<30} {'train s':>8} {'loss':>7} {'FID seed 1':>11} {'FID seed 2':>11}"
    print(header + "\n" + "-" * len(header))
    for label, seconds, loss, fids in rows:
        print(f"{label:<30} {seconds:>8.0f} {loss:>7.4f} {fids[0]:>11.2f} {fids[1]:>11.2f}")
    fast_fid, plain_fid = sum(rows[0][3]) / 2, sum(rows[1][3]) / 2
    print(f"ratio fp32/fast-path classifier-FID: {plain_fid / fast_fid:.2f}")
    print(f"ratio fp32/fast-path train wall time: {rows[1][1] / rows[0][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
