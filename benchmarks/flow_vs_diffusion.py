"""Flow matching against diffusion at an equal budget of network evaluations (notebook 11, issue 14):
classifier-FID against NFE for a flow-matching model (Euler, Heun) and the shipped ε-model (DDIM,
DPM-Solver++(2M)), with N and the real-vs-real floor stated, and the straightness S of both.

    python benchmarks/flow_vs_diffusion.py                      # N=1000, NFE 1 … 64 (a GPU: minutes)
    python benchmarks/flow_vs_diffusion.py --quick --flow-checkpoint runs/tiny/checkpoint.pt   # N=64, NFE 1, 4, 16, S on 16
    python benchmarks/flow_vs_diffusion.py --out F --resume     # keep F's rows, measure only the missing ones

Every row starts from the same noise (the same --seed, drawn batch by batch as in quality_tables.py);
the flow model's x_1 and the ε-model's x_T are the same tensors.  Rows:

* ``flow Euler NFE=k``:  FlowEulerSampler(steps=k), uniform in t;
* ``flow Heun NFE=k``:   FlowHeunSampler(steps=k/2), 2 calls per step: the even NFE only;
* ``ε DDIM NFE=k``:      DDIMSampler(steps=k), η=0, uniform timesteps, x̂_0 clipped (the course's default);
* ``ε DPM++2M NFE=k``:   DPMSolverPP2MSampler(steps=k), Karras σ spacing (as quality_tables.py's solver table);
* with --logit-normal-checkpoint, ``flow Euler (logit-normal t) NFE=k`` and ``flow Heun (logit-normal t) NFE=k``:
  the same two samplers on a flow model trained with logit-normal t (SD3 §3.1) and otherwise the same
  recipe, and its straightness: the uniform-against-logit-normal comparison of issue 14;
* straightness S (flow.path_straightness, mean over images and pixels) on the first --straightness-n
  noises: the flow model's Euler-64 path, and the ε-model's DDIM-64 path (η=0, no clipping: the ODE
  itself) in flow coordinates, c·x_t at t = √(1−ᾱ)·c (flow.trajectory_to_flow).

The JSON (--out) is rewritten after every row; with --resume a row already in it (same table,
setting, precision, N and seed) is kept.  A PNG of FID against NFE is written next to it (--plot).
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

from benchmarks.quality_tables import earlier_run, generate, row_key, solver_for  # noqa: E402
from ddpm_teach.checkpoint import checkpoint_objective, load_diffusion_model  # noqa: E402
from ddpm_teach.devices import describe_device, pick_device  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.flow import (FlowEulerSampler, FlowHeunSampler, path_straightness, straightness,  # noqa: E402
                             trajectory_to_flow)
from ddpm_teach.samplers import DDIMSampler, randn, sample  # noqa: E402

CK = ROOT / "checkpoints"
NFES = (1, 2, 4, 8, 16, 32, 64)
QUICK_NFES = (1, 4, 16)
FAMILIES = ("flow Euler", "flow Heun", "ε DDIM", "ε DPM++2M")
LOGIT_NORMAL = " (logit-normal t)"
LN_FAMILIES = tuple(f + LOGIT_NORMAL for f in FAMILIES[:2])
STRAIGHTNESS_STEPS = 64


def sampler_for(family: str, nfe: int, schedule):
    """The family's sampler at exactly ``nfe`` network evaluations, or None where it cannot hit it
    (Heun: 2 calls per step, so only even NFE)."""
    family = family.removesuffix(LOGIT_NORMAL)
    if family == "flow Euler":
        return FlowEulerSampler(steps=nfe)
    if family == "flow Heun":
        return FlowHeunSampler(steps=nfe // 2) if nfe % 2 == 0 else None
    return solver_for({"ε DDIM": "DDIM", "ε DPM++2M": "DPM++2M"}[family], schedule, nfe)


def load_model(path: Path, objective: str, device, what: str):
    if not path.is_file():
        hint = ("train one (python -m ddpm_teach train --preset cpu-fast --objective flow --out-dir runs/flow, then "
                "`export` it), or point --flow-checkpoint at any flow run (a tiny one will do for --quick)"
                if objective == "flow" else "the shipped ε-model lives in checkpoints/")
        raise SystemExit(f"{what} {path} does not exist: {hint}")
    model, schedule, ckpt = load_diffusion_model(path, device=device)
    if checkpoint_objective(ckpt) != objective:
        raise SystemExit(f"{what} {path} is a {checkpoint_objective(ckpt)!r} model, not {objective!r}")
    return model, schedule, ckpt


def run(args, on_row=None, done: list[dict] | None = None) -> list[dict]:
    """Measure every row (or keep it from ``done``); ``on_row(rows)`` after each one."""
    device = pick_device(args.device)
    flow_model, _, _ = load_model(Path(args.flow_checkpoint), "flow", device, "--flow-checkpoint")
    eps_model, schedule, _ = load_model(Path(args.eps_checkpoint), "eps", device, "--eps-checkpoint")
    if flow_model.config.image_size != eps_model.config.image_size or flow_model.config.in_channels != eps_model.config.in_channels:
        raise SystemExit("the flow and ε models must make images of one shape, to start from the same noise")
    ln_model = None
    if args.logit_normal_checkpoint:
        ln_model, _, ln_ckpt = load_model(Path(args.logit_normal_checkpoint), "flow", device,
                                          "--logit-normal-checkpoint")
        t_sampling = ln_ckpt["train_config"].get("t_sampling")
        if t_sampling != "logit_normal":
            raise SystemExit(f"--logit-normal-checkpoint {args.logit_normal_checkpoint} was trained with t_sampling="
                             f"{t_sampling!r}: give one trained with --t-sampling logit_normal")
    earlier = {row_key(r): r for r in done or []}
    rows: list[dict] = []
    evaluator = None

    def keep(table, setting, n) -> bool:
        kept = earlier.pop((table, setting, args.precision, n), None)
        if kept is not None:
            rows.append(kept)
            value = f"FID={kept['fid']:.3f}" if "fid" in kept else f"S={kept['straightness']:.4f}"
            print(f"{setting:<36} | N={n} kept from the earlier run ({value})", flush=True)
        return kept is not None

    def add(row):
        rows.append(row)
        if on_row is not None:
            on_row(rows + list(earlier.values()))

    families = [f for f in FAMILIES if f in args.families] + ([f for f in LN_FAMILIES if f.removesuffix(LOGIT_NORMAL)
                                                                 in args.families] if ln_model is not None else [])
    for family in families:
        model = ln_model if family in LN_FAMILIES else flow_model if family.startswith("flow") else eps_model
        for nfe in args.nfes:
            sampler = sampler_for(family, nfe, schedule)
            if sampler is None:
                continue
            setting = f"{family} NFE={sampler.nfe}"
            if keep("fid_vs_nfe", setting, args.n):
                continue
            evaluator = evaluator or Evaluator.load(device=device)
            start = time.perf_counter()
            images = generate(model, sampler, args.n, args.batch_size, device, args.seed, precision=args.precision)
            seconds = time.perf_counter() - start
            row = {"table": "fid_vs_nfe", "setting": setting, "family": family, "nfe": sampler.nfe,
                   "sampler": repr(sampler), "precision": args.precision, **evaluator.score(images),
                   "seconds": seconds, "device": describe_device(device)}
            row.pop("class_histogram", None)
            print(f"{setting:<36} | N={row['n']} FID={row['fid']:.3f} (floor {row['fid_floor']:.3f})  [{seconds:.0f} s]",
                  flush=True)
            add(row)

    # straightness on n_s noises drawn from the same seed
    n_s = min(args.straightness_n, args.n)
    shape = (n_s, eps_model.config.in_channels, eps_model.config.image_size, eps_model.config.image_size)
    x_T = randn(shape, generator=torch.Generator().manual_seed(args.seed), device=device)
    ddim = DDIMSampler(schedule, steps=STRAIGHTNESS_STEPS, clip_x0=False)
    measures = [
            (f"flow Euler-{STRAIGHTNESS_STEPS}",
             lambda: straightness(flow_model, FlowEulerSampler(steps=STRAIGHTNESS_STEPS), x_T=x_T, device=device,
                                  precision=args.precision)),
            (f"ε DDIM-{STRAIGHTNESS_STEPS} η=0 no clip, flow coordinates",
             lambda: path_straightness(*trajectory_to_flow(schedule, sample(
                 eps_model, ddim, x_T=x_T, device=device, progress=False, return_trajectory=True,
                 precision=args.precision)[1])))]
    if ln_model is not None:
        measures.append((f"flow Euler-{STRAIGHTNESS_STEPS}{LOGIT_NORMAL}",
                         lambda: straightness(ln_model, FlowEulerSampler(steps=STRAIGHTNESS_STEPS), x_T=x_T, device=device,
                                              precision=args.precision)))
    for setting, measure in measures if args.straightness_n > 0 else []:
        if keep("straightness", setting, n_s):
            continue
        start = time.perf_counter()
        value = measure()
        row = {"table": "straightness", "setting": setting, "precision": args.precision, "n": n_s,
               "straightness": value, "seconds": time.perf_counter() - start, "device": describe_device(device)}
        print(f"{setting:<36} | N={n_s} S={value:.4f}", flush=True)
        add(row)
    rows.extend(earlier.values())   # rows of the earlier run that this one did not ask for stay in the file
    if on_row is not None:
        on_row(rows)
    return rows


def summary_lines(rows: list[dict], n: int) -> list[str]:
    """The two ratios the issue asks for, at this run's N."""
    fid_rows = [r for r in rows if r["table"] == "fid_vs_nfe" and r["n"] == n]

    def best(families: tuple[str, ...], max_nfe: float = float("inf")):
        chosen = [r for r in fid_rows if r.get("family") in families and r["nfe"] <= max_nfe]
        return min(chosen, key=lambda r: r["fid"]) if chosen else None

    lines = []
    flow, eps = best(FAMILIES[:2]), best(FAMILIES[2:])
    if flow and eps:
        lines.append(f"flow best FID / eps best FID: {flow['fid'] / eps['fid']:.2f} "
                     f"({flow['setting']} {flow['fid']:.3f}; {eps['setting']} {eps['fid']:.3f})")
    flow8, ddim8 = best(FAMILIES[:2], 8), best(("ε DDIM",), 8)
    if flow8 and ddim8:
        lines.append(f"at NFE<=8: flow Euler/Heun best vs DDIM best: {flow8['fid']:.3f} ({flow8['setting']}) vs "
                     f"{ddim8['fid']:.3f} ({ddim8['setting']}), ratio {flow8['fid'] / ddim8['fid']:.2f}")
    for family in LN_FAMILIES:
        pairs = [(r, u) for r in fid_rows if r.get("family") == family for u in fid_rows
                 if u.get("family") == family.removesuffix(LOGIT_NORMAL) and u["nfe"] == r["nfe"]]
        if pairs:
            lines.append(f"{family} / uniform t, FID ratio at NFE " + ", ".join(
                f"{r['nfe']}: {r['fid'] / u['fid']:.2f}" for r, u in sorted(pairs, key=lambda p: p[0]["nfe"])))
    return lines


def plot(rows: list[dict], n: int, path: Path) -> Path:
    """FID against NFE (log x), one line per family, the real-vs-real floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    fid_rows = [r for r in rows if r["table"] == "fid_vs_nfe" and r["n"] == n]
    for index, family in enumerate(FAMILIES + LN_FAMILIES):
        points = sorted((r["nfe"], r["fid"]) for r in fid_rows if r.get("family") == family)
        if points:
            ax.plot(*zip(*points), marker="o" if family in FAMILIES else "x", label=family,
                    color=f"C{index % len(FAMILIES)}", linestyle="-" if family in FAMILIES else ":")
    if fid_rows:
        ax.axhline(fid_rows[0]["fid_floor"], color="grey", linestyle="--", label=f"real vs real (N={n})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    nfes = sorted({r["nfe"] for r in fid_rows})
    ax.set_xticks(nfes, [str(k) for k in nfes])
    low, high = ax.get_ylim()
    ax.set_yticks([y for y in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100) if low <= y <= high])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("network evaluations (NFE)")
    ax.set_ylabel("classifier-FID")
    ax.set_title(f"flow matching vs diffusion, N={n}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="samples per row (default 1000; 64 with --quick)")
    parser.add_argument("--quick", action="store_true", help="N=64 and NFE 1, 4, 16 (a couple of minutes on 2 cores)")
    parser.add_argument("--flow-checkpoint", default=str(CK / "fashion_mnist_flow.pt"))
    parser.add_argument("--eps-checkpoint", default=str(CK / "fashion_mnist_ddpm.pt"))
    parser.add_argument("--logit-normal-checkpoint", default=None,
                        help="a flow model trained with --t-sampling logit_normal (and otherwise the same recipe): "
                             "adds its Euler and Heun rows and its straightness")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="which sampler families to measure (default all)")
    parser.add_argument("--nfes", nargs="+", type=int, default=None,
                        help="the NFE to measure (default 1 2 4 8 16 32 64; 1 4 16 with --quick)")
    parser.add_argument("--straightness-n", type=int, default=None,
                        help="images whose paths give S (default 256; 16 with --quick; at most --n; 0: none)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32", help="autocast for the networks")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "flow_vs_diffusion.json"))
    parser.add_argument("--plot", default=None, help="the PNG of FID against NFE (default: --out with .png)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --out (same table, setting, precision, N and seed)")
    args = parser.parse_args(argv)
    args.n = args.n or (64 if args.quick else 1000)
    args.nfes = tuple(args.nfes) if args.nfes else QUICK_NFES if args.quick else NFES
    if min(args.nfes) < 1 or args.n < 1:
        parser.error("--nfes and --n must be positive")
    if args.straightness_n is None:
        args.straightness_n = 16 if args.quick else 256
    out = Path(args.out)
    device = pick_device(args.device)
    done, commands = earlier_run(out, args.seed) if args.resume else ([], [])
    header = {"n": args.n, "nfes": list(args.nfes), "precision": args.precision, "seed": args.seed,
              "flow_checkpoint": args.flow_checkpoint, "eps_checkpoint": args.eps_checkpoint,
              "logit_normal_checkpoint": args.logit_normal_checkpoint,
              "device": describe_device(device), "torch": torch.__version__,
              "command": "python benchmarks/flow_vs_diffusion.py " + " ".join(sys.argv[1:] if argv is None else argv),
              **({"earlier_commands": commands} if done else {})}
    print(f"# flow vs diffusion: N={args.n} per row, NFE {list(args.nfes)}, {args.precision}, on {header['device']}, "
          f"torch {torch.__version__}")
    if done:
        print(f"# --resume: {len(done)} rows of {out} are kept; the rest are measured")

    def save(rows):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({**header, "rows": rows, "summary": summary_lines(rows, args.n)}, indent=2,
                                  ensure_ascii=False))
        tmp.replace(out)

    rows = run(args, on_row=save, done=done)
    fid_rows = [r for r in rows if r["table"] == "fid_vs_nfe" and r["n"] == args.n]
    if fid_rows:
        print(f"\nreal-vs-real floor at N={args.n}: {fid_rows[0]['fid_floor']:.3f}")
    print("\n| setting | NFE | N | classifier-FID | floor at N | seconds |\n|---|---|---|---|---|---|")
    for r in fid_rows:
        print(f"| {r['setting']} | {r['nfe']} | {r['n']} | {r['fid']:.3f} | {r['fid_floor']:.3f} | {r['seconds']:.0f} |")
    print("\n| straightness S (mean over images and pixels) | N | S |\n|---|---|---|")
    for r in rows:
        if r["table"] == "straightness":
            print(f"| {r['setting']} | {r['n']} | {r['straightness']:.4f} |")
    print()
    for line in summary_lines(rows, args.n):
        print(line)
    png = plot(rows, args.n, Path(args.plot) if args.plot else out.with_suffix(".png"))
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
