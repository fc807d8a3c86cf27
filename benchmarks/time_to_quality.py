"""How long do I have to train?  Classifier-FID against minutes of training, ours against the
matched diffusers peer, each at its fastest on this machine.

    python benchmarks/time_to_quality.py            # 30 minutes each, a snapshot every 3, N=1000 (about 90 min)
    python benchmarks/time_to_quality.py --quick    # 3 minutes each, a snapshot every minute, N=256 (about 15 min)
    python benchmarks/time_to_quality.py --smoke    # seconds, for the tests: the numbers mean nothing

Both sides are trained by the same code, ``ddpm_teach.trainer.Trainer`` with the ``cpu-fast``
preset (batch 64, lr 1e-3 with 100 warm-up steps and the cosine ``lr_at`` fitted to the budget,
AdamW, gradient clipping at 1, EMA 0.995, the same ``BatchOrder`` batches and the same t and ε
draws from the same seed), and differ only in the network:

* **ours**: ``ddpm_teach.unet.UNet(COURSE_UNET)``, 1,112,801 parameters;
* **diffusers, matched layout**: ``UNet2DModel`` from ``common.build_peer(COURSE_UNET,
  layout="matched")``: the same levels, blocks, attention placement, 8 GroupNorm groups, 4 heads of
  size 16, dropout 0 and zero initialisation, the same parameter count; ``tests/test_peer.py``
  shows it computes our network's function from our weights.

"At its fastest": each run starts with the package's set-up probe (``--probe-setup``,
``ddpm_teach.setup_probe``), which times fp32 / bf16 autocast, channels_last and torch.compile on
this machine and trains with the fastest; for the peer the benchmark first times diffusers'
attention with PyTorch's default SDPA kernel and with the math kernel, and keeps the faster.
Every second of probing, attention timing and compiling is paid out of the side's budget.  Each
side trains in a freshly spawned process of its own, with a cold inductor cache of its own
(``TORCHINDUCTOR_CACHE_DIR`` in the run's temporary folder), so that neither inherits compiled
kernels, compile workers or a warm on-disk cache from the other side or an earlier run.  The runs
go one after the other, each with the whole machine.

Every ``--every`` minutes (and at the end) the EMA weights are copied; afterwards every copy
samples N images with DDIM-50 (η = 0, uniform timesteps, x̂_0 clipped; ddpm_teach's sampler for
both networks, from the same noise) and the shipped classifier scores them against the test set,
with the real-vs-real floor at N.  The final weights of each side are also sampled with its own
library's default DDIM (diffusers' ``DDIMScheduler`` as ``DDIMPipeline`` runs it).

Printed: the table, and ``ratio peer/ours minutes to FID <= X: R`` for the lowest X (rounded up to
0.1) that both curves reach, with a snapshot's resolution (the first snapshot at or under X).
Written: ``--out`` .json, .png (FID against minutes) and .md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (COURSE_UNET, add_scoring_run_arguments, build_peer, machine_header,  # noqa: E402
                               num_parameters, samples_to_score)
from benchmarks.fast_path import SAMPLING_STEPS, ddim_diffusers  # noqa: E402
from ddpm_teach.data import load_dataset  # noqa: E402
from ddpm_teach.devices import native_precision  # noqa: E402
from ddpm_teach.evaluation import Evaluator  # noqa: E402
from ddpm_teach.samplers import DDIMSampler, sample  # noqa: E402
from ddpm_teach.setup_probe import describe_setup  # noqa: E402
from ddpm_teach.trainer import Trainer  # noqa: E402
from ddpm_teach.training import preset_configs  # noqa: E402
from ddpm_teach.unet import UNet  # noqa: E402

RATIO_LINE = "ratio peer/ours minutes to FID <= {x:g}: {ratio:.2f}"
SIDES = ("ours", "diffusers, matched layout")
SIZES = {"full": (30.0, 3.0), "quick": (3.0, 1.0), "smoke": (0.15, 0.05)}     # (budget, every) in minutes
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "time_to_quality"


class PeerNetwork(torch.nn.Module):
    """The diffusers peer as the trainer and the sampler call a network: ``net(x_t, t, labels)`` →
    ε̂ (diffusers returns ``.sample``), with ``config`` (the layout it matches) for ``sample``.
    ``math_sdpa`` runs its attention with PyTorch's math kernel."""

    def __init__(self, peer: torch.nn.Module, math_sdpa: bool = False):
        super().__init__()
        self.peer, self.config, self.math_sdpa = peer, COURSE_UNET, math_sdpa

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        # under torch.compile, inductor lowers attention itself: the kernel choice (and the context
        # manager, which dynamo would have to trace) is left out of the compiled graph
        if not self.math_sdpa or torch.compiler.is_compiling():
            return self.peer(x, t).sample
        with sdpa_kernel(SDPBackend.MATH):
            return self.peer(x, t).sample

    def num_parameters(self) -> int:
        return num_parameters(self.peer)


def pick_peer_attention(data, batch: int, seed: int, steps: int = 6) -> tuple[bool, dict]:
    """Time the peer's training step (bf16 autocast where the CPU has it natively, else fp32) with
    the default and the math SDPA kernel, by the set-up probe's own timing loop
    (``ddpm_teach.setup_probe.time_setup``); True if math is faster by more than its margin."""
    from ddpm_teach.forward import q_sample
    from ddpm_teach.schedules import NoiseSchedule
    from ddpm_teach.setup_probe import MARGIN, time_setup

    schedule = NoiseSchedule.from_name("linear", 1000)
    batches = [data.batch(torch.arange(i * batch, (i + 1) * batch), torch.device("cpu")) for i in range(2)]
    setup = {"mixed_precision": "bf16" if native_precision() == "bf16" else "no", "channels_last": False, "compile": False}

    def step_fn(net, optimizer, batch, generator, amp):
        x0 = batch[0]
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = (net(q_sample(schedule, x0, t, noise), t) - noise).float().pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rates = {}
    for math_sdpa in (False, True):
        torch.manual_seed(seed)
        net = PeerNetwork(build_peer(COURSE_UNET, layout="matched"), math_sdpa)
        rates["math" if math_sdpa else "default"] = time_setup(net, setup, batches, step_fn, torch.device("cpu"),
                                                               warmup=2, steps=steps)["img_per_s"]
    print(f"peer attention: {rates['default']:.1f} img/s with the default SDPA kernel, {rates['math']:.1f} with math "
          f"({'bf16 autocast' if setup['mixed_precision'] == 'bf16' else 'fp32'})", flush=True)
    return rates["math"] > (1 + MARGIN) * rates["default"], rates


def train_side(side: str, data, minutes: float, every: float, seed: int, out_dir: Path, math_sdpa: bool,
               try_compile: bool = True, already_spent: float = 0.0) -> dict:
    """Train one side for ``minutes`` with the cpu-fast preset (probe included); EMA copies every
    ``every`` minutes of wall clock and at the end.  ``already_spent`` seconds (the peer's attention
    timing) count as the budget's first seconds."""
    config, model_config = preset_configs("cpu-fast", max_minutes=minutes - already_spent / 60,
                                          out_dir=str(out_dir / side.split(",")[0]), checkpoint_every=0, seed=seed)
    # each side compiles with a cold inductor cache of its own: a cache warmed by an earlier run would
    # shorten one side's probe (on a 2-core CPU compiling takes 1-2 minutes cold, seconds warm)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(out_dir / f"inductor_{side.split(',')[0]}")
    network = None
    if side != "ours":
        torch.manual_seed(seed)
        network = PeerNetwork(build_peer(COURSE_UNET, layout="matched"), math_sdpa)
    trainer = Trainer(config, model_config, data=data, overwrite=True, network=network)
    # smoke size: nothing to probe (fp32 eager), so that its seconds go to training
    trainer.probe_fixed = {} if try_compile else {"mixed_precision": "no", "channels_last": False, "compile": False}
    trainer.probe_cache = False                     # each side pays its own probe, every run
    snapshots, started = [], time.perf_counter() - already_spent
    next_mark = [every]

    def take(trainer: Trainer, elapsed: float) -> None:
        snapshots.append({"minutes": elapsed / 60, "step": trainer.step,
                          "ema": {k: v.detach().clone() for k, v in trainer.ema.module.state_dict().items()}})

    def callback(trainer: Trainer, loss: float) -> None:
        elapsed = time.perf_counter() - started
        if elapsed >= 60 * next_mark[0] and elapsed < 60 * minutes:
            take(trainer, elapsed)
            next_mark[0] += every

    print(f"\n== {side}: {minutes:g} minutes", flush=True)
    trainer.train(progress=True, callback=callback)
    seconds = time.perf_counter() - started
    take(trainer, seconds)
    probe = trainer.setup_probe or {}
    setup = describe_setup(probe["chosen"]) if probe else "?"
    if side != "ours":
        setup += ", math SDPA" if math_sdpa else ", default SDPA"
    return {"side": side, "parameters": num_parameters(trainer.model), "steps": trainer.step, "seconds": seconds,
            "img_per_s": trainer.step * config.batch_size / seconds, "setup": setup, "probe": probe,
            "final_loss": sum(trainer.loss_history[-50:]) / max(1, len(trainer.loss_history[-50:])),
            "snapshots": snapshots}


def _side_process(spec: dict) -> None:
    """One side, in a process of its own (``run_side``): the peer's attention timing, then
    ``train_side``, every second of both out of the side's budget; the result goes to ``spec["out"]``."""
    torch.set_num_threads(spec["threads"])
    data = load_dataset("fashion_mnist", spec["data_root"], train=True)
    started = time.perf_counter()
    math_sdpa, rates = False, {}
    if spec["side"] != "ours":
        math_sdpa, rates = pick_peer_attention(data, spec["probe_batch"], spec["seed"], steps=spec["probe_steps"])
    result = train_side(spec["side"], data, spec["minutes"], spec["every"], spec["seed"], Path(spec["runs_dir"]),
                        math_sdpa, try_compile=spec["try_compile"], already_spent=time.perf_counter() - started)
    torch.save({**result, "math_sdpa": math_sdpa, "peer_attention": rates}, spec["out"])


def run_side(spec: dict) -> dict:
    """``_side_process`` in a freshly spawned Python, so that neither side inherits the other's
    compiled kernels, inductor's in-memory caches and compile workers, or its warmed-up allocator:
    each pays its own start, as a user's run would."""
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=_side_process, args=(spec,))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"training {spec['side']!r} failed (exit code {process.exitcode}); its error is printed above")
    return torch.load(spec["out"], weights_only=True)


def network_for(side: str, weights: dict, math_sdpa: bool) -> torch.nn.Module:
    net = UNet(COURSE_UNET) if side == "ours" else PeerNetwork(build_peer(COURSE_UNET, layout="matched"), math_sdpa)
    net.load_state_dict(weights)
    return net.eval()


@torch.no_grad()
def sample_ours(net, schedule, n: int, batch: int, seed: int, precision: str) -> torch.Tensor:
    """DDIM-50, η = 0, uniform timesteps, x̂_0 clipped: ddpm_teach's sampler, the same noise for every call."""
    sampler, generator, out = DDIMSampler(schedule, steps=SAMPLING_STEPS, eta=0.0), torch.Generator().manual_seed(seed), []
    for begin in range(0, n, batch):
        out.append(sample(net, sampler, min(batch, n - begin), generator=generator, progress=False, precision=precision))
    return torch.cat(out)


def minutes_to(curve: list[dict], x: float) -> float | None:
    """The first snapshot's minutes at which FID <= x (None if never)."""
    return next((p["minutes"] for p in curve if p["fid"] <= x), None)


def common_target(curves: dict[str, list[dict]]) -> float | None:
    """The lowest FID, rounded up to 0.1, that every curve reaches."""
    best = max(min(p["fid"] for p in c) for c in curves.values())
    return math.ceil(best * 10 - 1e-9) / 10 if math.isfinite(best) else None


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for side, style in zip(SIDES, ("o-", "s--")):
        curve = result["curves"][side]
        ax.plot([p["minutes"] for p in curve], [p["fid"] for p in curve], style,
                label=f"{side} ({result['runs'][side]['setup']})")
    ax.axhline(result["floor"], color="grey", lw=0.8, ls=":", label=f"real vs real floor ({result['floor']:.2f})")
    if result.get("target") is not None:
        ax.axhline(result["target"], color="tab:red", lw=0.8, ls="-.", label=f"FID = {result['target']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("minutes of training (probe and compile included)")
    ax.set_ylabel(f"classifier-FID, N = {result['n']} (log)")
    ax.set_title(f"Fashion-MNIST, {result['cpu']}, {result['threads']} threads", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict) -> str:
    lines = [f"| minutes | {SIDES[0]}: step | FID | {SIDES[1]}: step | FID |", "|---|---|---|---|---|"]
    a, b = (result["curves"][s] for s in SIDES)
    for i in range(max(len(a), len(b))):
        cells = []
        for curve in (a, b):
            p = curve[i] if i < len(curve) else None
            cells += [f"{p['step']:,}" if p else "", f"{p['fid']:.2f}" if p else ""]
        minutes = (a[i] if i < len(a) else b[i])["minutes"]
        lines.append(f"| {minutes:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scoring_run_arguments(parser, quick="3 minutes each, a snapshot every minute, N=256",
                              smoke="seconds, for the tests (the numbers mean nothing)")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per side (default 30; --quick 3)")
    parser.add_argument("--every", type=float, default=None, help="minutes between snapshots (default 3; --quick 1)")
    parser.add_argument("--batch", type=int, default=250, help="images per sampling batch (default 250)")
    parser.add_argument("--out", default=None, help=f"output prefix (default {DEFAULT_OUT.relative_to(ROOT)}[_quick])")
    args = parser.parse_args(argv)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    minutes, every = args.minutes or SIZES[size][0], args.every or SIZES[size][1]
    n = samples_to_score(args)
    out = Path(args.out) if args.out else DEFAULT_OUT.with_name(DEFAULT_OUT.name + ("" if size == "full" else f"_{size}"))
    for name, value in (("--minutes", minutes), ("--every", every), ("--n", n), ("--batch", args.batch)):
        if not value > 0:
            print(f"error: {name} must be positive, got {value}.", file=sys.stderr)
            return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = native_precision()
    print(machine_header("time to quality: ours against diffusers (matched layout), each at its fastest",
                         torch.device("cpu"), SimpleNamespace(name=size), timing=f"{minutes:g} min each, snapshots every {every:g} min, "
                         f"N={n}, DDIM-{SAMPLING_STEPS} in {precision}"))
    data = load_dataset("fashion_mnist", args.data_root, train=True)
    evaluator = Evaluator.load(data_root=args.data_root)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="time_to_quality_") as runs_dir:     # the runs' own checkpoints
        for i, side in enumerate(SIDES):                                          # one after the other
            runs[side] = run_side({"side": side, "minutes": minutes, "every": every, "seed": args.seed,
                                   "runs_dir": runs_dir, "try_compile": size != "smoke", "data_root": args.data_root,
                                   "threads": torch.get_num_threads(), "probe_batch": 64 if size != "smoke" else 8,
                                   "probe_steps": 6 if size != "smoke" else 1, "out": str(Path(runs_dir) / f"{i}.pt")})
    math_sdpa = runs[SIDES[1]].pop("math_sdpa")
    attention_rates = runs[SIDES[1]].pop("peer_attention")
    runs[SIDES[0]].pop("math_sdpa"), runs[SIDES[0]].pop("peer_attention")
    # -- score every snapshot with the same sampler and noise -----------------------------------
    from ddpm_teach.schedules import NoiseSchedule
    schedule = NoiseSchedule.from_name("linear", 1000)
    floor = evaluator.fid_floor(n)
    curves, finals = {}, {}
    for side in SIDES:
        curves[side] = []
        for snap in runs[side].pop("snapshots"):
            net = network_for(side, snap["ema"], math_sdpa)
            started = time.perf_counter()
            images = sample_ours(net, schedule, n, args.batch, args.seed, precision)
            fid = evaluator.score(images)["fid"]
            curves[side].append({"minutes": round(snap["minutes"], 3), "step": snap["step"], "fid": fid})
            print(f"{side:26s} {snap['minutes']:5.1f} min  step {snap['step']:6d}  FID {fid:7.2f}  "
                  f"(sampled in {time.perf_counter() - started:.0f} s)", flush=True)
        last = net
        if side == "ours":
            finals[side] = {"sampler": "ddpm_teach DDIMSampler (its default)", "fid": curves[side][-1]["fid"]}
        else:                                          # diffusers' own DDIM, as DDIMPipeline runs it
            images, _ = ddim_diffusers(lambda x, t, net=last: net(x, t.expand(x.shape[0])), n, args.batch, args.seed)
            finals[side] = {"sampler": "diffusers DDIMScheduler, library defaults (leading spacing, "
                                       "use_clipped_model_output=False), fp32",
                            "fid": evaluator.score(images)["fid"]}
    target = common_target(curves)
    result = {"cpu": runs["ours"]["probe"].get("cpu", "?"), "threads": torch.get_num_threads(), "minutes": minutes,
              "every": every, "n": n, "floor": floor, "floor_n": evaluator.floor_n(n), "seed": args.seed,
              "sampler": f"ddpm_teach DDIMSampler, {SAMPLING_STEPS} steps, eta 0, uniform, clipped x0, {precision}",
              "peer_attention": attention_rates, "runs": runs, "curves": curves, "own_sampler_final": finals,
              "target": target, "size": size,
              "command": " ".join(["python benchmarks/time_to_quality.py", *(sys.argv[1:] if argv is None else argv)])}
    times = {side: minutes_to(curves[side], target) for side in SIDES} if target is not None else {}
    result["minutes_to_target"] = times
    print(f"\nreal-vs-real floor at N={n}: {floor:.2f}; sampler: {result['sampler']}")
    for side in SIDES:
        r = runs[side]
        print(f"{side}: {r['setup']}; {r['steps']:,} steps in {r['seconds'] / 60:.1f} min ({r['img_per_s']:.1f} img/s "
              f"incl. probe and compile); final FID {curves[side][-1]['fid']:.2f}; with {finals[side]['sampler']}: "
              f"{finals[side]['fid']:.2f}")
    print(markdown(result))
    if target is not None and all(times.values()):
        result["ratio"] = times[SIDES[1]] / times[SIDES[0]]
        print(RATIO_LINE.format(x=target, ratio=result["ratio"])
              + f"  (ours {times[SIDES[0]]:.1f} min, peer {times[SIDES[1]]:.1f} min, first snapshot at or under it)")
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result) + "\n")
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')}, .md and .png")
    return 0


if __name__ == "__main__":
    from ddpm_teach.allocator import restart_with_fast_allocator

    restart_with_fast_allocator(sys.argv[1:], script=__file__)   # tcmalloc for both sides, as the CLI has it
    sys.exit(main())
