"""The GPU suite's two parts that run a subprocess (see ``benchmarks/gpu_suite.py``):

3. ``fid``: a short ``python -m ddpm_teach train --preset gpu`` run; each checkpoint it writes is kept
   as it appears (:class:`SnapshotWatcher`) and scored afterwards (:func:`score_snapshots`);
4. ``quality``: ``benchmarks/quality_tables.py --resume`` for what the budget has left.

Both run under :func:`run_bounded`, which stops the subprocess at its time limit."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks.common import REPO_ROOT, shown_command
from benchmarks.gpu_suite_setup import FID_EXTRA_S, FID_MAX_SNAPSHOTS, MIN_PART_S, Suite, relative
from ddpm_teach.unet import UNetConfig

__all__ = ["Finished", "run_bounded", "SnapshotWatcher", "training_command", "score_snapshots", "part_fid",
           "part_quality"]


# ----------------------------------------------------------------------------------------------
# a subprocess under a time limit
# ----------------------------------------------------------------------------------------------

@dataclass
class Finished:
    returncode: int
    seconds: float
    stopped: bool                    # stopped at its time limit


def run_bounded(command: list[str], log: Path, timeout_s: float, poll: Callable[[], None] | None = None,
                env: dict | None = None, every_s: float = 0.5) -> Finished:
    """Run ``command`` from the repository root, its output in ``log``, calling ``poll()`` every
    ``every_s`` while it runs.  At ``timeout_s`` it gets SIGTERM (a training run saves its checkpoint
    and stops; quality_tables.py has its finished rows on disk already), and SIGKILL 30 s later."""
    print(shown_command(command), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    started, stopped, kill_at = time.perf_counter(), False, float("inf")
    with open(log, "w") as stream:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=stream, stderr=subprocess.STDOUT, env=env)
        try:
            while process.poll() is None:
                if poll is not None:
                    poll()
                now = time.perf_counter()
                if not stopped and now - started > timeout_s:
                    print(f"  its time limit ({timeout_s:.0f} s) is reached: stopping it", flush=True)
                    process.terminate()
                    stopped, kill_at = True, now + 30.0
                elif now > kill_at:
                    process.kill()
                try:
                    process.wait(timeout=every_s)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if process.poll() is None:   # the suite itself was stopped: do not leave the child running
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return Finished(process.returncode, time.perf_counter() - started, stopped)


class SnapshotWatcher:
    """Keeps every checkpoint a training run writes.  The trainer replaces ``checkpoint.pt``
    atomically (a new file each time), so each new one is hard-linked into ``folder`` as it appears
    (copied where links fail), with its minutes since ``started`` (a ``time.time()``)."""

    def __init__(self, checkpoint: Path, folder: Path, started: float):
        self.checkpoint, self.folder, self.started = checkpoint, folder, started
        self.kept: list[tuple[Path, float]] = []
        self._seen: set[tuple[int, int]] = set()

    def poll(self) -> None:
        target = self.folder / f"snapshot_{len(self.kept):03d}.pt"
        try:
            stat = self.checkpoint.stat()
            if stat.st_mtime < self.started or (stat.st_ino, stat.st_mtime_ns) in self._seen:
                return                   # none yet, an older run's, or the one kept last time
            self.folder.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                os.link(self.checkpoint, target)
                stat = target.stat()     # the file linked (a newer one if it was replaced meanwhile)
            except FileNotFoundError:
                raise
            except OSError:              # a file system without hard links
                shutil.copy2(self.checkpoint, target)
        except FileNotFoundError:        # not written yet, or replaced just now: the next poll
            return
        key = (stat.st_ino, stat.st_mtime_ns)
        if key in self._seen:
            target.unlink()
            return
        self._seen.add(key)
        self.kept.append((target, (stat.st_mtime - self.started) / 60))


# ----------------------------------------------------------------------------------------------
# 3. a short --preset gpu run, scored against minutes
# ----------------------------------------------------------------------------------------------

def model_flags(config: UNetConfig) -> list[str]:
    """The UNet's size as flags of ``python -m ddpm_teach train``."""
    return ["--base-channels", str(config.base_channels), "--channel-mults", *map(str, config.channel_mults),
            "--num-res-blocks", str(config.num_res_blocks),
            "--attention-resolutions", *map(str, config.attention_resolutions)]


def training_command(suite: Suite, train_s: float) -> list[str]:
    """``python -m ddpm_teach train --preset gpu`` for ``train_s`` seconds (the dry run: 3 steps of
    the toy UNet, fp32 and eager on the CPU)."""
    command = [sys.executable, "-m", "ddpm_teach", "train", "--preset", "gpu", "--out-dir", str(suite.run_dir),
               "--overwrite", "--checkpoint-every", str(suite.args.checkpoint_every), "--device", str(suite.device),
               "--seed", str(suite.args.seed)]
    if not suite.dry_run:
        return command + ["--max-minutes", f"{train_s / 60:.2f}"]
    return command + ["--steps", "3", "--no-compile", "--mixed-precision", "no", "--T", "20",
                      "--batch-size", str(suite.scale.train.batch_size), "--threads", str(torch.get_num_threads()),
                      *model_flags(suite.scale.unet)]


def _evenly(items: list, most: int) -> list:
    """At most ``most`` of ``items``, evenly spaced, the first and the last included."""
    if len(items) <= most:
        return items
    return [items[i] for i in sorted({round(k * (len(items) - 1) / (most - 1)) for k in range(most)})]


def score_snapshots(suite: Suite, kept: list[tuple[Path, float]]) -> list[dict]:
    """DDIM from each kept checkpoint's EMA weights, N samples, classifier-FID and its floor."""
    from benchmarks.quality_tables import generate
    from ddpm_teach.checkpoint import load_diffusion_model
    from ddpm_teach.evaluation import Evaluator
    from ddpm_teach.samplers import DDIMSampler

    evaluator = Evaluator.load(device=suite.device, data_root=suite.args.data_root)
    n, rows, steps_seen = suite.args.fid_n, [], set()
    for path, minutes in _evenly(kept, FID_MAX_SNAPSHOTS):
        model, schedule, ckpt = load_diffusion_model(path, device=suite.device)
        if int(ckpt["step"]) in steps_seen:      # the final save of a step saved periodically as well
            continue
        steps_seen.add(int(ckpt["step"]))
        sampler = DDIMSampler(schedule, steps=min(suite.scale.sample_steps, schedule.T))
        started = time.perf_counter()
        images = generate(model, sampler, n, min(n, 1000), suite.device, suite.args.seed)
        scores = evaluator.score(images)
        rows.append({"step": int(ckpt["step"]), "minutes": minutes, "n": scores["n"], "fid": scores["fid"],
                     "fid_floor": scores["fid_floor"], "fid_floor_n": scores["fid_floor_n"],
                     "sample_seconds": time.perf_counter() - started})
        print(f"  step {rows[-1]['step']:>6}, {minutes:5.2f} min: {Evaluator.format_scores(scores)}", flush=True)
    return rows


def part_fid(suite: Suite, deadline: float) -> dict:
    """3. Train with --preset gpu in a subprocess, keep its checkpoints, score each."""
    train_s = min(60.0 * suite.args.fid_minutes, deadline - time.perf_counter() - FID_EXTRA_S)
    command = training_command(suite, train_s)
    if not suite.dry_run and train_s < MIN_PART_S:
        print(f"fid: skipped, the budget is spent ({train_s:.0f} s of training left); run it alone with "
              f"--parts fid, or: {shown_command(command)}")
        return {"status": "skipped: the budget is spent", "command": shown_command(command)}
    snapshots = suite.run_dir / "snapshots"
    for old in snapshots.glob("snapshot_*.pt"):  # an earlier suite run's
        old.unlink()
    watcher = SnapshotWatcher(suite.run_dir / "checkpoint.pt", snapshots, started=time.time())
    log = suite.run_dir / "train.log"
    run = run_bounded(command, log, timeout_s=max(MIN_PART_S, deadline - time.perf_counter() - FID_EXTRA_S / 2),
                      poll=watcher.poll, env=suite.env)
    watcher.poll()                               # the last save
    if not watcher.kept or (run.returncode not in (0, 130) and not run.stopped):   # 130: stopped, and saved
        raise RuntimeError(f"the training run failed (exit code {run.returncode}); its output is in {log}")
    print(f"training: {run.seconds:.0f} s, {len(watcher.kept)} checkpoint(s) kept; scoring DDIM-"
          f"{suite.scale.sample_steps} of N={suite.args.fid_n} from the EMA weights", flush=True)
    rows = score_snapshots(suite, watcher.kept)
    for path, _ in watcher.kept:
        path.unlink()
    final = rows[-1]
    print(f"FID after {final['minutes']:.2f} min ({final['step']} steps): {final['fid']:.3f} "
          f"(real-vs-real floor at N={final['fid_floor_n']}: {final['fid_floor']:.3f})")
    return {"command": shown_command(command), "train_minutes": None if suite.dry_run else round(train_s / 60, 2),
            "checkpoint_every": suite.args.checkpoint_every, "exit_code": run.returncode,
            "stopped_at_time_limit": run.stopped, "process_seconds": run.seconds, "n": suite.args.fid_n,
            "sampler": f"DDIM-{suite.scale.sample_steps}, eta=0, fp32, EMA weights",
            "minutes": "since the training process started (start-up, data loading and torch.compile included)",
            "rows": rows, "log": relative(log)}


# ----------------------------------------------------------------------------------------------
# 4. the quality tables at N=5000
# ----------------------------------------------------------------------------------------------

def _quality_rows(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def part_quality(suite: Suite, deadline: float) -> dict:
    """4. quality_tables.py --resume until it finishes or the budget ends."""
    out = suite.quality_out
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "quality_tables.py"), *suite.scale.quality_args,
               "--device", str(suite.device), "--out", str(out), "--resume"]
    seconds = deadline - time.perf_counter()
    if seconds < MIN_PART_S:
        print(f"quality: skipped, the budget is spent ({max(0.0, seconds):.0f} s left); run it alone with "
              f"--parts quality, or: {shown_command(command)}")
        return {"status": "skipped: the budget is spent", "command": shown_command(command)}
    before = len(_quality_rows(out))
    log = suite.run_dir / "quality_tables.log"
    run = run_bounded(command, log, timeout_s=seconds, env=suite.env)
    if run.returncode and not run.stopped:
        raise RuntimeError(f"quality_tables.py failed (exit code {run.returncode}); its output is in {log}")
    saved = json.loads(out.read_text()) if out.exists() else {"rows": []}
    rows = [{k: r.get(k) for k in ("table", "setting", "precision", "n", "fid", "fid_floor", "accuracy", "device")}
            for r in saved["rows"]]
    status = "done" if run.returncode == 0 else "stopped at the budget (the same command continues: --resume)"
    print(f"quality: {len(rows)} row(s) in {relative(out)}, {len(rows) - before} new in this run; {status}")
    for line in saved.get("targets", []):
        print(f"  {line}")
    return {"status": status, "command": shown_command(command), "out": relative(out), "log": relative(log),
            "rows_before": before, "rows": rows, "targets": saved.get("targets", [])}

