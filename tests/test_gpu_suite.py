"""benchmarks/gpu_suite.py, the one command for a lent GPU.  Its ``--dry-run`` runs every part on
the CPU at toy sizes and writes every part's keys to the JSON and a table to the markdown; without
CUDA and without --dry-run it refuses in one line.  Also: the budget's shares, a subprocess stopped
at its time limit, the checkpoints kept as a training run replaces them, and the parts of an
earlier run kept (a dry run never replaces a GPU run's results)."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
import time

import pytest
import torch

from benchmarks import gpu_suite
from ddpm_teach.files import atomic_write

HAS_PEER = importlib.util.find_spec("diffusers") is not None


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_dry_run_measures_every_part(tmp_path, capsys):
    out = tmp_path / "suite.json"
    assert gpu_suite.main(["--dry-run", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("== GPU suite") and "DRY RUN" in printed.splitlines()[0]   # the machine header first
    saved = json.loads(out.read_text())
    assert saved["dry_run"] is True and saved["device"].startswith("cpu")
    assert list(saved["parts"]) == list(gpu_suite.PARTS)
    assert {part: result["status"] for part, result in saved["parts"].items()} == dict.fromkeys(gpu_suite.PARTS, "done")
    parts = saved["parts"]

    models = ["ours", "diffusers"] if HAS_PEER else ["ours"]
    train = parts["train"]
    assert [r["model"] for r in train["rows"]] == models and train["compile"] is False
    for row in train["rows"]:
        for key in ("img_per_s", "ms_per_step", "train_gflop_per_image", "achieved_tflops"):
            assert _finite_positive(row[key]), (key, row)
        assert row["mfu"] is None and row["train_gflop_per_image"] > row["forward_gflop_per_image"]
    assert len({row["train_gflop_per_image"] for row in train["rows"]}) == 1    # model FLOPs, the same function

    sample = parts["sample"]
    assert [(r["batch"], r["precision"]) for r in sample["rows"]] == [(4, "fp32"), (4, "bf16"), (8, "fp32"), (8, "bf16")]
    assert all(_finite_positive(r["ours_img_per_s"]) for r in sample["rows"])

    fid = parts["fid"]
    assert fid["command"].startswith("python -m ddpm_teach train --preset gpu") and "--steps 3" in fid["command"]
    assert fid["rows"][-1]["step"] == 3 and fid["exit_code"] == 0
    for row in fid["rows"]:
        assert row["n"] == 16 and _finite_positive(row["fid"]) and _finite_positive(row["fid_floor"])
        assert 0 <= row["minutes"] < 5
    assert list((tmp_path / "suite_run" / "snapshots").glob("*.pt")) == []      # scored, then removed

    quality = parts["quality"]
    assert "--resume" in quality["command"] and len(quality["rows"]) >= 1
    assert all(r["n"] == 8 and _finite_positive(r["fid"]) for r in quality["rows"])
    assert (tmp_path / "suite_quality.json").exists()

    memory = parts["memory"]
    assert [r["model"].split()[0] for r in memory["rows"]] == ["gpu", "photos64"]
    assert memory["rows"][1]["image_size"] == 64 and memory["rows"][1]["grad_accum"] == 2
    assert all(r["peak_mb"] == gpu_suite.NOT_MEASURED and r["parameters"] > 0 for r in memory["rows"])

    text = out.with_suffix(".md").read_text()
    assert text.startswith("# DRY RUN")
    sections = re.split(r"^## \d\. ", text, flags=re.MULTILINE)[1:]
    assert len(sections) == len(gpu_suite.PARTS)
    assert all("|---|" in section for section in sections), text

    for what in ("train", "sample"):
        match = re.search(rf"^ratio ours/peer {what} img/s: (\S+)$", printed, flags=re.MULTILINE)
        assert match, printed
        if HAS_PEER:
            assert _finite_positive(float(match.group(1)))
    if not HAS_PEER:
        assert "peer: skipped (diffusers is not installed" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without CUDA")
@pytest.mark.parametrize("flags", [[], ["--device", "cpu"]])
def test_without_cuda_it_refuses_in_one_line(tmp_path, capsys, flags):
    out = tmp_path / "suite.json"
    assert gpu_suite.main(["--out", str(out), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and "--dry-run" in captured.err
    assert not out.exists()


def test_budget_shares():
    later = ["sample", "fid", "quality", "memory"]
    # the default 8 minutes: training gets its 120 s; part 3 its 3 minutes and 90 s of start-up and scoring
    assert gpu_suite.part_seconds("train", 480, later, fid_minutes=3) == 120
    assert gpu_suite.part_seconds("fid", 300, ["quality", "memory"], fid_minutes=3) == 270
    # a tight budget: the later parts' shares are kept back
    assert gpu_suite.part_seconds("train", 400, later, fid_minutes=3) == 400 - 60 - 270 - 30
    # the quality tables take what is left after memory's reserve, and nothing when it is spent
    assert gpu_suite.part_seconds("quality", 100, ["memory"], fid_minutes=3) == 70
    assert gpu_suite.part_seconds("quality", 20, ["memory"], fid_minutes=3) == 0
    assert gpu_suite.part_seconds("quality", 100, [], fid_minutes=3) == 100


def test_a_subprocess_is_stopped_at_its_time_limit(tmp_path):
    polls = []
    log = tmp_path / "log.txt"
    finished = gpu_suite.run_bounded([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                                     log, timeout_s=1.0, poll=lambda: polls.append(1), every_s=0.1)
    assert finished.stopped and finished.returncode != 0 and finished.seconds < 20
    assert polls and "started" in log.read_text()
    done = gpu_suite.run_bounded([sys.executable, "-c", "pass"], log, timeout_s=30.0)
    assert not done.stopped and done.returncode == 0


def test_every_checkpoint_a_run_writes_is_kept_once(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    checkpoint = run / "checkpoint.pt"
    atomic_write(checkpoint, lambda f: f.write("an older run's"), binary=False)
    watcher = gpu_suite.SnapshotWatcher(checkpoint, run / "snapshots", started=time.time() + 1)
    watcher.poll()                                  # older than the run: not kept
    assert watcher.kept == []
    watcher.started = time.time() - 1
    for text in ("step 1", "step 2"):
        atomic_write(checkpoint, lambda f, text=text: f.write(text), binary=False)   # as the trainer replaces it
        watcher.poll()
        watcher.poll()                              # the same file again: kept once
    assert [path.read_text() for path, _ in watcher.kept] == ["step 1", "step 2"]
    assert all(0 <= minutes < 1 for _, minutes in watcher.kept)


def test_earlier_parts_are_kept_and_a_dry_run_never_replaces_gpu_results(tmp_path, capsys):
    out = tmp_path / "suite.json"
    gpu_run = {"suite": gpu_suite.SUITE, "dry_run": False, "started_at": "then",
               "parts": {"train": {"status": "done", "rows": []}, "memory": {"status": "done", "rows": []}}}
    out.write_text(json.dumps(gpu_run))
    assert gpu_suite.earlier_parts(out, dry_run=False, selected=["memory"]) == {
        "train": {"status": "done", "rows": [], "from_earlier_run": "then"}}
    assert gpu_suite.earlier_parts(out, dry_run=True, selected=["memory"]) == {}
    assert gpu_suite.main(["--dry-run", "--parts", "memory", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "a dry run does not replace them" in captured.err and captured.out == ""
    assert json.loads(out.read_text()) == gpu_run
