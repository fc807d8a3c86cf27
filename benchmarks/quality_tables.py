"""The result tables of the README and of notebooks 05-08: classifier-FID (and conditional
accuracy) of the shipped checkpoints under every sampler setting, with N and the real-vs-real
floor stated.

    python benchmarks/quality_tables.py --n 5000 --out benchmarks/results/quality_n5000.json   # the README's tables (GPU: minutes)
    python benchmarks/quality_tables.py --quick                                                # N=100, a subset, CPU-friendly
    python benchmarks/quality_tables.py --n 1000 --ddpm-n 500 --precision bf16 --out ...       # what a 2-core CPU can do in ~45 min
    python benchmarks/quality_tables.py ... --out F --resume     # keep F's rows, measure only the missing ones

A long run can be spread over several sittings: the JSON is rewritten after every row, and with
``--resume`` a row already in it (same table, setting, precision and N, same seed) is kept
instead of measured again.

Tables: DDPM 1000 steps (β and β̃); DDIM 10/20/50/100 steps × η 0/0.5/1; guidance scale s in
{0, 1, 1.5, 2, 3, 5}; learned variance against fixed variance at 25/50/100 DDPM steps; the fast
samplers of notebook 09 (DDIM η=0, Euler, Heun, DPM-Solver++(2M)) at NFE 5/10/15/20/35/50, and
guided (s=2) DDIM against DPM-Solver++(2M) at 10 and 20 NFE:

    python benchmarks/quality_tables.py --tables solvers --n 1000 --out benchmarks/results/solvers_n1000.json
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
from ddpm_teach.solvers import DPMSolverPP2MSampler, EulerSampler, HeunSampler  # noqa: E402

CK = ROOT / "checkpoints"


def generate(model, sampler, n, batch_size, device, seed, labels=None, guidance_scale=1.0, precision="fp32"):
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        part = None if labels is None else labels[start:start + m]
        chunks.append(sample(model, sampler, m, labels=part, guidance_scale=guidance_scale, generator=generator,
                             device=device, progress=False, precision=precision).cpu())
    return torch.cat(chunks)


TABLES = ("ddim", "guidance", "learned_var", "solvers", "ddpm")
SOLVER_NFE = (5, 10, 15, 20, 35, 50)


def solver_for(name: str, schedule, nfe: int):
    """The table's solver at (about) ``nfe`` network evaluations: Heun's 2·steps − 1 is odd, so it
    gets the nearest odd NFE at or below.  DDIM keeps its uniform spacing (the course's baseline);
    the ODE solvers use Karras et al.'s σ spacing."""
    if name == "DDIM":
        return DDIMSampler(schedule, steps=nfe)
    if name == "Heun":
        return HeunSampler(schedule, steps=(nfe + 1) // 2, spacing="karras")
    return {"Euler": EulerSampler, "DPM++2M": DPMSolverPP2MSampler}[name](schedule, steps=nfe, spacing="karras")


def row_key(row: dict) -> tuple:
    """What makes two rows the same measurement (the seed is checked once, for the whole file)."""
    return row["table"], row["setting"], row["precision"], row["n"]


def earlier_run(path: Path, seed: int) -> tuple[list[dict], list[str]]:
    """The rows and commands of an earlier run's JSON, for ``--resume``; a file from another seed
    is refused."""
    if not path.exists():
        return [], []
    try:
        saved = json.loads(path.read_text())
        rows = saved["rows"]
        for r in rows:
            row_key(r)
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"--resume: {path} is not a quality_tables JSON ({err!r}); move it away or drop --resume") from err
    if saved.get("seed", 0) != seed:
        raise SystemExit(f"--resume: {path} was measured with --seed {saved.get('seed', 0)}, not {seed}; "
                         "pass that seed or write to another --out")
    return rows, saved.get("earlier_commands", []) + [saved.get("command", "?")]


def run(args, on_row=None, done: list[dict] | None = None) -> list[dict]:
    """Score every row of the selected tables; ``on_row(rows)`` is called after each row (the
    script uses it to keep the JSON file current, so a long run that is stopped loses nothing).
    Rows in ``done`` (an earlier run's, see ``--resume``) are kept instead of measured again;
    those of tables not selected now are carried along unchanged."""
    device = pick_device(args.device)
    evaluator = None  # loaded (test-set features, ~7 s) on the first row that is measured, not kept
    earlier = {row_key(r): r for r in done or []}
    rows: list[dict] = []

    def score(table, setting, model, sampler, labels=None, guidance_scale=1.0, n=None, precision=None):
        n = n or args.n
        precision = precision or args.precision
        kept = earlier.pop((table, setting, precision, n), None)
        if kept is not None:
            rows.append(kept)
            print(f"{table:>16} | {setting:<28} | {precision} | N={n} kept from the earlier run "
                  f"(FID={kept['fid']:.3f})", flush=True)
            return kept
        nonlocal evaluator
        evaluator = evaluator or Evaluator.load(device=device)
        start = time.perf_counter()
        images = generate(model, sampler, n, args.batch_size, device, args.seed, labels, guidance_scale, precision)
        seconds = time.perf_counter() - start
        row = {"table": table, "setting": setting, "precision": precision, **evaluator.score(images, labels),
               "seconds": seconds, "seconds_per_1000": 1000 * seconds / n, "nfe": sampler.nfe,
               "device": describe_device(device)}
        row.pop("class_histogram", None)
        rows.append(row)
        acc = f"  acc={100 * row['accuracy']:.1f}%" if "accuracy" in row else ""
        print(f"{table:>16} | {setting:<28} | {precision} | N={row['n']} FID={row['fid']:.3f} "
              f"(floor {row['fid_floor']:.3f}){acc}  [{seconds:.0f} s]", flush=True)
        if on_row is not None:  # the earlier rows not reached yet are saved too: a stop loses none of them
            on_row(rows + list(earlier.values()))
        return row

    uncond, schedule, _ = load_diffusion_model(CK / "fashion_mnist_ddpm.pt", device=device)
    if "ddim" in args.tables:
        for steps in ([10, 20, 50, 100] if not args.quick else [10, 50]):
            for eta in ([0.0, 0.5, 1.0] if not args.quick else [0.0, 1.0]):
                score("ddim", f"DDIM-{steps} η={eta}", uncond, DDIMSampler(schedule, steps=steps, eta=eta))
        if args.precision != "fp32":  # the control: does reduced precision move the score?
            score("ddim", "DDIM-50 η=0.0", uncond, DDIMSampler(schedule, steps=50, eta=0.0), precision="fp32")

    if "guidance" in args.tables:
        cfg_model, cfg_schedule, _ = load_diffusion_model(CK / "fashion_mnist_cfg.pt", device=device)
        labels = torch.arange(args.n) % cfg_model.config.num_classes
        for s in ([0.0, 1.0, 1.5, 2.0, 3.0, 5.0] if not args.quick else [0.0, 1.0, 2.0]):
            score("guidance", f"s={s:g} (w={s - 1:g}) DDIM-{args.guidance_steps}", cfg_model,
                  DDIMSampler(cfg_schedule, steps=args.guidance_steps), labels=labels, guidance_scale=s)

    if "learned_var" in args.tables:
        lv_model, lv_schedule, _ = load_diffusion_model(CK / "fashion_mnist_learned_var.pt", device=device)
        for steps in ([25, 50, 100] if not args.quick else [25]):
            for variance in ("learned_range", "fixed_small", "fixed_large"):
                score("learned_var", f"DDPM-{steps} {variance}", lv_model,
                      DDPMSampler(lv_schedule, steps=steps, variance_type=variance))

    if "solvers" in args.tables:
        for name in ("DDIM", "Euler", "Heun", "DPM++2M"):
            for nfe in (SOLVER_NFE if not args.quick else (10, 20)):
                sampler = solver_for(name, schedule, nfe)
                score("solvers", f"{name} NFE={sampler.nfe}", uncond, sampler)
        cfg_model, cfg_schedule, _ = load_diffusion_model(CK / "fashion_mnist_cfg.pt", device=device)
        labels = torch.arange(args.n) % cfg_model.config.num_classes
        for name in ("DDIM", "DPM++2M"):
            for nfe in (10, 20):
                score("solvers", f"s=2 {name} NFE={nfe}", cfg_model, solver_for(name, cfg_schedule, nfe),
                      labels=labels, guidance_scale=2.0)

    if "ddpm" in args.tables:  # the most expensive rows last
        steps = None if not args.quick else 100
        for variance in args.ddpm_variances:
            name = f"DDPM-{steps or schedule.T} {'β̃' if variance == 'fixed_small' else 'β'}"
            score("ddpm", name, uncond, DDPMSampler(schedule, steps=steps, variance_type=variance), n=args.ddpm_n)
        if args.ddpm_n != args.n:  # FID depends on N: the DDIM references for the targets at the same N
            for ddim_steps in (20, 50):
                score("ddpm", f"DDIM-{ddim_steps} η=0.0 (same N)", uncond, DDIMSampler(schedule, steps=ddim_steps),
                      n=args.ddpm_n)
    rows.extend(earlier.values())  # rows of the earlier run that this one did not ask for stay in the file
    if on_row is not None:
        on_row(rows)
    return rows


def _find(rows, table, prefix):
    return next((r for r in rows if r["table"] == table and r["setting"].startswith(prefix)), None)


def solver_target_lines(rows: list[dict], ddpm: dict | None) -> list[str]:
    """Issue 13's targets for the fast samplers."""
    lines = []
    dpm = [r for r in rows if r["table"] == "solvers" and r["setting"].startswith("DPM++2M NFE=")]
    within = [r for r in dpm if int(r["setting"].split("=")[-1]) <= 20]
    if ddpm and within and all(r["n"] == ddpm["n"] for r in within):
        best = min(within, key=lambda r: r["fid"])
        ratio = best["fid"] / ddpm["fid"]
        lines.append(f"DPM++2M at <= 20 NFE ({best['setting']}) / {ddpm['setting']} FID: {ratio:.2f} "
                     f"(target <= 1.1: {'met' if ratio <= 1.1 else 'NOT met'})")
    dpm10 = _find(rows, "solvers", "DPM++2M NFE=10")
    ddim50 = _find(rows, "solvers", "DDIM NFE=50") or _find(rows, "ddim", "DDIM-50 η=0.0")
    if dpm10 and ddim50 and dpm10["n"] == ddim50["n"]:
        lines.append(f"DPM++2M at 10 NFE: FID {dpm10['fid']:.3f} against DDIM-50's {ddim50['fid']:.3f} "
                     f"(target: better: {'met' if dpm10['fid'] < ddim50['fid'] else 'NOT met'})")
    guided20, ddim_s2 = _find(rows, "solvers", "s=2 DPM++2M NFE=20"), _find(rows, "guidance", "s=2 ")
    if guided20 and ddim_s2 and guided20["n"] == ddim_s2["n"]:
        ok = guided20["accuracy"] >= ddim_s2["accuracy"]
        lines.append(f"guided s=2, DPM++2M at 20 NFE: accuracy {100 * guided20['accuracy']:.1f}% against DDIM-50's "
                     f"{100 * ddim_s2['accuracy']:.1f}% (target: no lower: {'met' if ok else 'NOT met'})")
    return lines


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's targets, checked against whichever rows were measured."""
    lines = []
    ddpm_rows = [r for r in rows if r["table"] == "ddpm" and r["setting"].startswith("DDPM-")]
    ddpm = min(ddpm_rows, key=lambda r: r["fid"]) if ddpm_rows else None  # the stricter reference
    for steps, limit in ((50, 1.2), (20, 2.0)):
        # FID falls as N grows: compare at the DDPM rows' N (a "same N" reference when it differs)
        ddim = _find(rows, "ddpm", f"DDIM-{steps} η=0.0 (same N)") or _find(rows, "ddim", f"DDIM-{steps} η=0.0")
        if ddpm and ddim and ddim["n"] != ddpm["n"]:
            lines.append(f"DDIM-{steps} against {ddpm['setting'].split()[0]}: not compared (N={ddim['n']} against N={ddpm['n']})")
        elif ddpm and ddim:
            ratio = ddim["fid"] / ddpm["fid"]
            lines.append(f"DDIM-{steps} η=0 / best {ddpm['setting'].split()[0]} ({ddpm['setting']}, N={ddpm['n']}) FID: {ratio:.2f} (target ≤ {limit}: {'met' if ratio <= limit else 'NOT met'})")
    lines += solver_target_lines(rows, ddpm)
    guided = [r for r in rows if r["table"] == "guidance"]
    s2, s1 = _find(rows, "guidance", "s=2 "), _find(rows, "guidance", "s=1 ")
    if s2:
        lines.append(f"accuracy at s=2: {100 * s2['accuracy']:.1f}% (target ≥ 98%: {'met' if s2['accuracy'] >= 0.98 else 'NOT met'})")
    if guided and s1:
        best = min(guided, key=lambda r: r["fid"])
        ratio = best["fid"] / s1["fid"]
        lines.append(f"best-s FID / unguided conditional (s=1) FID: {ratio:.2f} at {best['setting'].split()[0]} "
                     f"(target ≤ 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="samples per row (the README uses 5000)")
    parser.add_argument("--ddpm-n", type=int, default=None, help="samples per DDPM-1000 row (default: --n)")
    parser.add_argument("--ddpm-variances", nargs="+", choices=["fixed_small", "fixed_large"],
                        default=["fixed_small", "fixed_large"], help="the DDPM-1000 rows: σ² = β̃ (fixed_small), β (fixed_large)")
    parser.add_argument("--quick", action="store_true", help="N=100 and a subset of rows")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES), help="which tables to run")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="autocast for the network; with bf16/fp16 one fp32 DDIM-50 row is added as a control")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--guidance-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="write the rows as JSON here (kept current after every row)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --out (same table, setting, precision, N and seed) and measure only the rest")
    args = parser.parse_args(argv)
    if args.resume and not args.out:
        parser.error("--resume needs --out: the JSON whose rows are kept")
    if args.quick:
        args.n = min(args.n, 100)
    args.ddpm_n = args.ddpm_n or args.n
    device = pick_device(args.device)
    done, commands = earlier_run(Path(args.out), args.seed) if args.resume else ([], [])
    header = {"n": args.n, "ddpm_n": args.ddpm_n, "precision": args.precision, "seed": args.seed,
              "device": describe_device(device),
              "torch": torch.__version__, "command": "python benchmarks/quality_tables.py " + " ".join(sys.argv[1:] if argv is None else argv),
              **({"earlier_commands": commands} if done else {})}
    print(f"# quality tables: N={args.n} per row (DDPM-1000: {args.ddpm_n}), {args.precision}, on "
          f"{header['device']}, torch {torch.__version__}")

    def save(rows):
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({**header, "rows": rows, "targets": target_lines(rows)}, indent=2, ensure_ascii=False))
            tmp.replace(out)

    if done:
        print(f"# --resume: {len(done)} rows of {args.out} are kept; the rest are measured")
    rows = run(args, on_row=save, done=done)
    print("\n| table | setting | precision | N | classifier-FID | floor at N | accuracy | seconds |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{100 * r['accuracy']:.1f}%" if "accuracy" in r else ""
        print(f"| {r['table']} | {r['setting']} | {r['precision']} | {r['n']} | {r['fid']:.3f} | {r['fid_floor']:.3f} | {acc} | {r['seconds']:.0f} |")
    for line in target_lines(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
