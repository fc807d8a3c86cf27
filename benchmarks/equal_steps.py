"""Equal steps, like for like: ours, the matched diffusers peer, diffusers' library defaults, and
ablations of ours, each trained for exactly the same steps by the same loop, then scored alike.

    python benchmarks/equal_steps.py                  # 2000 steps each, N=1000, seed 0 (hours on 2 cores)
    python benchmarks/equal_steps.py --seeds 0 1      # the seed spread: every row with two seeds
    python benchmarks/equal_steps.py --quick          # 200 steps each, N=256
    python benchmarks/equal_steps.py --smoke          # seconds, for the tests: the numbers mean nothing

Every row is trained by ``ddpm_teach.trainer.Trainer`` with the ``cpu-fast`` preset's recipe
(batch 64, lr 1e-3, 100 warm-up steps, the cosine ``lr_at`` over ``--steps``, AdamW, clipping at 1,
EMA 0.995), the same ``BatchOrder`` batches and the same t and ε draws for a seed, and one fixed
setup for all (bf16 autocast where the CPU has it natively, else fp32; eager): at equal steps the
clock does not matter, and a shared setup keeps the arithmetic alike.  The rows differ only in
the network:

* ``ours``: ``UNet(COURSE_UNET)``;
* ``diffusers, matched layout``: ``build_peer(COURSE_UNET, layout="matched")`` (our groups, heads
  and zero initialisation in diffusers' code, the same parameter count);
* ``diffusers, library defaults``: ``layout="defaults"`` (32 GroupNorm groups, heads of size 8,
  PyTorch's initialisation), trained by our loop, so that only the network differs;
* ablations of ours, one change each: ``ours, no zero-init`` (the zero-initialised layers get
  PyTorch's default initialisation), ``ours, 32 groups`` (GroupNorm groups 8 → 32, one channel per
  group at width 32, as diffusers' default), ``ours, LR floor 0`` (the cosine ends at 0, as
  diffusers' ``get_cosine_schedule_with_warmup``).

Each row's EMA weights sample N images with DDIM-50 (η = 0, uniform timesteps, x̂_0 clipped;
ddpm_teach's sampler for every network, from the same noise) and the shipped classifier scores them
with the real-vs-real floor at N; the diffusers rows are also sampled with diffusers' own
``DDIMScheduler`` defaults.  Printed: the table and ``ratio peer/ours classifier-FID at equal steps:
R`` (the matched peer over ours; above 1: ours is better).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import COURSE_UNET, add_scoring_run_arguments, build_peer, machine_header, num_parameters, samples_to_score  # noqa: E402,E501
from benchmarks.fast_path import ddim_diffusers  # noqa: E402
from benchmarks.time_to_quality import PeerNetwork, sample_ours  # noqa: E402
from ddpm_teach.data import load_dataset  # noqa: E402
from ddpm_teach.devices import native_precision  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.schedules import NoiseSchedule  # noqa: E402
from ddpm_teach.trainer import Trainer  # noqa: E402
from ddpm_teach.training import preset_configs  # noqa: E402
from ddpm_teach.unet import UNet  # noqa: E402

RATIO_LINE = "ratio peer/ours classifier-FID at equal steps: {:.2f}"
ROWS = ("ours", "diffusers, matched layout", "diffusers, library defaults", "ours, no zero-init", "ours, 32 groups",
        "ours, LR floor 0")
STEPS = {"full": 2000, "quick": 200, "smoke": 3}
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "equal_steps_matched"


def reset_zero_init(model: UNet) -> int:
    """Give our zero-initialised layers (each ResBlock's conv2, each attention projection, conv_out)
    PyTorch's default initialisation; returns how many layers were reset."""
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and (name.endswith("conv2") or name.endswith(".proj") or name == "conv_out"):
            module.reset_parameters()
            count += 1
    return count


def build_row(row: str, seed: int, steps: int, out_dir: Path, setup: dict):
    """(TrainConfig, UNetConfig, network or None) of one row."""
    overrides = dict(max_minutes=None, steps=steps, out_dir=str(out_dir), checkpoint_every=0, seed=seed,
                     probe_setup=False, **setup)
    if row == "ours, LR floor 0":
        overrides["min_lr_ratio"] = 0.0
    if row == "ours, 32 groups":
        overrides["norm_groups"] = 32
    config, model_config = preset_configs("cpu-fast", **overrides)
    torch.manual_seed(seed)
    network = None
    if row.startswith("diffusers"):
        network = PeerNetwork(build_peer(model_config, layout="matched" if "matched" in row else "defaults"))
    elif row == "ours, no zero-init":
        network = UNet(model_config)
        if reset_zero_init(network) == 0:
            raise RuntimeError("found no zero-initialised layers to reset")
    return config, model_config, network


def network_copy(row: str, model_config, weights: dict) -> torch.nn.Module:
    if row.startswith("diffusers"):
        net = PeerNetwork(build_peer(model_config, layout="matched" if "matched" in row else "defaults"))
    else:
        net = UNet(model_config)
    net.load_state_dict(weights)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scoring_run_arguments(parser, quick="200 steps each, N=256", smoke="3 steps each, N=32 (for the tests)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per row (default 2000; --quick 200)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: --seed)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="which rows (default: all)")
    parser.add_argument("--batch", type=int, default=250, help="images per sampling batch")
    parser.add_argument("--out", default=None, help=f"output prefix (default {DEFAULT_OUT.relative_to(ROOT)}[_quick])")
    args = parser.parse_args(argv)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    steps, n = args.steps or STEPS[size], samples_to_score(args)
    seeds = args.seeds or [args.seed]
    if steps <= 0 or n < 2:
        print("error: --steps must be positive and --n at least 2.", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else DEFAULT_OUT.with_name(DEFAULT_OUT.name + ("" if size == "full" else f"_{size}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = native_precision()
    setup = {"mixed_precision": "bf16" if precision == "bf16" else "no", "compile": False, "channels_last": False}
    print(machine_header("equal steps: ours, diffusers (matched, defaults) and ablations, one loop",
                         torch.device("cpu"), SimpleNamespace(name=size),
                         timing=f"{steps} steps each, seeds {seeds}, N={n}, DDIM-50 in {precision}"))
    data = load_dataset("fashion_mnist", args.data_root, train=True)
    evaluator = Evaluator.load(data_root=args.data_root)
    schedule = NoiseSchedule.from_name("linear", 1000)
    floor = evaluator.fid_floor(n)
    results = []
    with tempfile.TemporaryDirectory(prefix="equal_steps_") as tmp:
        for seed in seeds:
            for row in args.rows:
                config, model_config, network = build_row(row, seed, steps, Path(tmp) / f"{seed}_{len(results)}", setup)
                trainer = Trainer(config, model_config, data=data, overwrite=True, network=network)
                print(f"\n== {row}, seed {seed}: {steps} steps", flush=True)
                started = time.perf_counter()
                trainer.train(progress=True)
                seconds = time.perf_counter() - started
                net = network_copy(row, model_config, trainer.ema.module.state_dict())
                images = sample_ours(net, schedule, n, args.batch, seed, precision)
                scores = evaluator.score(images)
                result = {"row": row, "seed": seed, "steps": trainer.step, "parameters": num_parameters(trainer.model),
                          "train_seconds": seconds, "final_loss": sum(trainer.loss_history[-50:]) / len(trainer.loss_history[-50:]),
                          "fid": scores["fid"], "mean_pixel": float((images.clamp(-1, 1) + 1).mul(127.5).mean()),
                          "class_histogram": scores["class_histogram"]}
                if row.startswith("diffusers"):
                    own, _ = ddim_diffusers(lambda x, t, net=net: net(x, t.expand(x.shape[0])), n, args.batch, seed)
                    result["fid_own_sampler"] = evaluator.score(own)["fid"]
                results.append(result)
                print(f"{row}: FID {scores['fid']:.2f} (floor {floor:.2f}), final loss {result['final_loss']:.4f}, "
                      f"mean pixel {result['mean_pixel']:.1f}", flush=True)
    real_mean = float(data.images[:n].float().mean())
    lines = [f"| row | seed | steps | params | final loss | mean pixel (real {real_mean:.1f}) | classifier-FID, ddpm_teach DDIM-50 "
             "| FID, diffusers DDIMScheduler defaults |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['row']} | {r['seed']} | {r['steps']:,} | {r['parameters']:,} | {r['final_loss']:.4f} | "
                     f"{r['mean_pixel']:.1f} | {r['fid']:.2f} | {r.get('fid_own_sampler', float('nan')):.2f} |")
    table = "\n".join(lines)
    print(f"\nN={n}, real-vs-real floor {floor:.2f}; sampler: ddpm_teach DDIMSampler, 50 steps, eta 0, uniform, clipped x0, "
          f"{precision}; training: {setup}")
    print(table)
    by = {}
    for r in results:
        by.setdefault(r["row"], []).append(r["fid"])
    if "ours" in by and "diffusers, matched layout" in by:
        ours, peer = (sum(by[k]) / len(by[k]) for k in ("ours", "diffusers, matched layout"))
        print(RATIO_LINE.format(peer / ours) + f"  (mean over seeds {seeds})")
        if len(seeds) > 1:
            spread = {k: max(v) - min(v) for k, v in by.items()}
            print("seed spread (max - min FID): " + ", ".join(f"{k} {v:.2f}" for k, v in spread.items()))
    result = {"steps": steps, "seeds": seeds, "n": n, "floor": floor, "precision": precision, "setup": setup,
              "rows": results, "real_mean_pixel": real_mean,
              "command": " ".join(["python benchmarks/equal_steps.py", *(sys.argv[1:] if argv is None else argv)])}
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out.with_suffix('.json')} and .md")
    return 0 if all(math.isfinite(r["fid"]) for r in results) else 1


if __name__ == "__main__":
    from ddpm_teach.allocator import restart_with_fast_allocator

    restart_with_fast_allocator(sys.argv[1:], script=__file__)
    sys.exit(main())
