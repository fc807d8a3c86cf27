"""The package used as a careless or hostile user would (issue 12): every user error of the command
line ends in exit code 2 and one line that names the flag or file and says what to do, with no
traceback, before any work, and with nothing written or overwritten.  Then the cases that need a
real process: a signal mid-training, two runs into one folder, a read-only and a full file system.

The table runs in-process through :func:`ddpm_teach.cli.main` (the same code as the command);
argparse's own errors are checked the same way (SystemExit 2, one line)."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_teach.checkpoint import load_checkpoint
from ddpm_teach.cli import main

from helpers_training import REPO, cli_env, finish, start_cli

TINY_FLAGS = ["--batch-size", "4", "--base-channels", "8", "--channel-mults", "1", "2", "--num-res-blocks", "1",
              "--attention-resolutions", "4", "--norm-groups", "4", "--T", "20", "--device", "cpu",
              "--warmup-steps", "1", "--checkpoint-every", "1"]
SHIPPED_DDPM = REPO / "checkpoints" / "fashion_mnist_ddpm.pt"
SHIPPED_CFG = REPO / "checkpoints" / "fashion_mnist_cfg.pt"


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    """In-process runs print no progress bars on stderr (as the subprocesses of helpers_training)."""
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two classes of 8×8 grey images: a data set that loads in no time, and large enough (FEW_FOLDER_IMAGES)
    that `train` has no memorisation warning to print besides the one error line these tests expect."""
    from ddpm_teach.data import FEW_FOLDER_IMAGES
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(FEW_FOLDER_IMAGES // 2):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, folder) -> Path:
    """A finished 3-step run (its folder), trained in-process."""
    out = tmp_path_factory.mktemp("run") / "r"
    torch.set_num_threads(1)
    assert main(["train", "--dataset", str(folder), "--steps", "3", *TINY_FLAGS, "--out-dir", str(out)]) == 0
    return out


def _snapshot(*paths: Path) -> dict:
    """Every file under ``paths`` with its bytes: what must not change."""
    files = {}
    for path in paths:
        for p in ([path] if path.is_file() else sorted(path.rglob("*")) if path.exists() else []):
            if p.is_file():
                files[str(p)] = p.read_bytes()
    return files


def _run_main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:            # argparse's errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err


def _error_line(err: str) -> str:
    """The one line of a clean failure: no traceback, one line starting with 'error: ', nothing
    else but progress bars (a run that fails half-way has shown its bar)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("train:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# Each case: (argv builder, words the one line must contain).  {run}, {folder}, {tmp} are filled in.
CASES = {
    # 2. a fresh run into a folder that holds one
    "fresh train over an existing run": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS,
                                          "--out-dir", "{run}"], ["--out-dir", "--resume", "--overwrite"]),
    # 3. export over its own source
    "export --out = --checkpoint": (["export", "--checkpoint", "{run}/checkpoint.pt", "--out", "{run}/checkpoint.pt"],
                                    ["--out", "--checkpoint", "another --out"]),
    "export over an existing file": (["export", "--checkpoint", "{run}/checkpoint.pt", "--out", "{run}/config.toml"],
                                     ["--out", "--overwrite"]),
    "train-classifier over an existing file": (["train-classifier", "--epochs", "1", "--out", "{run}/config.toml"],
                                               ["--out", "--overwrite"]),
    # 6, 7. what --resume may not change, and --steps below the run's step
    "resume changing the model and T": (["train", "--resume", "{run}/checkpoint.pt", "--T", "7", "--batch-size", "16",
                                         "--conditional", "--base-channels", "16"],
                                        ["--t 7", "--batch-size 16", "--conditional True", "--base-channels 16",
                                         "another --out-dir"]),
    "resume --steps below the step reached": (["train", "--resume", "{run}/checkpoint.pt", "--steps", "2"],
                                              ["--steps 2", "step 3", "--steps above 3"]),
    "resume with a preset": (["train", "--resume", "{run}/checkpoint.pt", "--preset", "cpu-fast"], ["--preset", "--resume"]),
    # 8. write targets, checked before the work
    "sample --out is a folder": (["sample", "--checkpoint", SHIPPED_DDPM, "--n", "2", "--steps", "2", "--out", "{tmp}"],
                                 ["--out", "is a folder", "file name"]),
    "sample --out under a file": (["sample", "--checkpoint", SHIPPED_DDPM, "--n", "2", "--steps", "2",
                                   "--out", "{run}/config.toml/x.png"], ["--out", "is a file, not a folder"]),
    "train --out-dir under a file": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS,
                                      "--out-dir", "{run}/config.toml/sub"], ["--out-dir", "is a file, not a folder"]),
    "export --out is a folder": (["export", "--checkpoint", "{run}/checkpoint.pt", "--out", "{tmp}"], ["--out", "folder"]),
    "evaluate --json is a folder": (["evaluate", "--samples", "{tmp}/ok.npz", "--json", "{tmp}"], ["--json", "folder"]),
    # 9. devices and threads
    "--device cuda without a GPU": (["sample", "--checkpoint", SHIPPED_DDPM, "--device", "cuda", "--out", "{tmp}/x.png"],
                                    ["--device", "cpu"]),
    "--device foo": (["sample", "--checkpoint", SHIPPED_DDPM, "--device", "foo", "--out", "{tmp}/x.png"],
                     ["--device 'foo'", "auto, cpu"]),
    "train --device foo": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--device", "foo",
                            "--out-dir", "{tmp}/t"], ["--device 'foo'"]),
    "--threads -1": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--threads", "-1",
                      "--out-dir", "{tmp}/t"], ["--threads", "-1"]),
    "--n too large for memory": (["sample", "--checkpoint", SHIPPED_CFG, "--labels", "all", "--n", "1000000000000",
                                  "--out", "{tmp}/x.npz"], ["--n 1000000000000", "GiB", "fewer"]),
    # 10. numbers out of range
    "--n 0": (["sample", "--checkpoint", SHIPPED_DDPM, "--n", "0", "--out", "{tmp}/x.png"], ["--n", ">= 1", "'0'"]),
    "--n -3": (["sample", "--checkpoint", SHIPPED_DDPM, "--n", "-3", "--out", "{tmp}/x.png"], ["--n", "'-3'"]),
    "--n 1e12 (not an integer)": (["sample", "--checkpoint", SHIPPED_DDPM, "--n", "1e12", "--out", "{tmp}/x.png"],
                                  ["--n", "integer", "'1e12'"]),
    "sample --batch-size 0": (["sample", "--checkpoint", SHIPPED_DDPM, "--batch-size", "0", "--out", "{tmp}/x.png"],
                              ["--batch-size", "'0'"]),
    "sample --batch-size -2": (["sample", "--checkpoint", SHIPPED_DDPM, "--batch-size", "-2", "--out", "{tmp}/x.png"],
                               ["--batch-size", "'-2'"]),
    "train --batch-size -2": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--batch-size", "-2",
                               "--out-dir", "{tmp}/t"], ["--batch-size", "-2"]),
    "train --image-size 0": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--image-size", "0",
                              "--out-dir", "{tmp}/t"], ["--image-size", "0"]),
    "train --steps 0": (["train", "--dataset", "{folder}", *TINY_FLAGS, "--steps", "0", "--out-dir", "{tmp}/t"],
                        ["--steps", "0"]),
    # 11. non-finite numbers
    "--guidance-scale nan": (["sample", "--checkpoint", SHIPPED_CFG, "--labels", "all", "--guidance-scale", "nan",
                              "--out", "{tmp}/x.png"], ["--guidance-scale", "finite"]),
    "--eta inf": (["sample", "--checkpoint", SHIPPED_DDPM, "--eta", "inf", "--out", "{tmp}/x.png"], ["--eta", "finite"]),
    # 12. evaluate inputs
    "evaluate float images": (["evaluate", "--samples", "{tmp}/float.npz"], ["--samples", "uint8", "sample --out"]),
    "evaluate labels/images mismatch": (["evaluate", "--samples", "{tmp}/mismatch.npz"], ["--samples", "labels", "one per image"]),
    "evaluate a text file named .npz": (["evaluate", "--samples", "{tmp}/text.npz"], ["--samples", "not an .npz"]),
    "evaluate an object array": (["evaluate", "--samples", "{tmp}/objects.npz"], ["--samples", "never loaded"]),
    "evaluate without images": (["evaluate", "--samples", "{tmp}/noimages.npz"], ["--samples", "no 'images'"]),
    "evaluate a .npy named .npz": (["evaluate", "--samples", "{tmp}/array.npz"], ["--samples", "single array"]),
    "evaluate mixed negative labels": (["evaluate", "--samples", "{tmp}/negative.npz"], ["--samples", "-1 for every image"]),
    "train --base-channels 0": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--base-channels", "0",
                                "--out-dir", "{tmp}/t"], ["--base-channels", "positive"]),
    "train --num-heads 0": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--num-heads", "0",
                             "--out-dir", "{tmp}/t"], ["--num-heads", "positive"]),
    "train --dropout 1.5": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--dropout", "1.5",
                             "--out-dir", "{tmp}/t"], ["--dropout", "[0, 1)"]),
    "guidance on an unconditional model": (["sample", "--checkpoint", SHIPPED_DDPM, "--guidance-scale", "2", "--labels", "all",
                                            "--out", "{tmp}/x.png"], ["--labels", "unconditional"]),
    "sample --steps above T": (["sample", "--checkpoint", SHIPPED_DDPM, "--steps", "2000", "--out", "{tmp}/x.png"],
                               ["--steps", "T=1000"]),
    "--spacing karras with ddim": (["sample", "--checkpoint", SHIPPED_DDPM, "--sampler", "ddim", "--spacing", "karras",
                                    "--out", "{tmp}/x.png"], ["--spacing karras", "euler"]),
    "--eta with an ODE solver": (["sample", "--checkpoint", SHIPPED_DDPM, "--sampler", "heun", "--eta", "1",
                                  "--out", "{tmp}/x.png"], ["--eta", "deterministic", "ddim"]),
    # 13. ranges
    "--label-dropout 5": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--label-dropout", "5",
                           "--out-dir", "{tmp}/t"], ["--label-dropout", "[0, 1]"]),
    "--ema-decay 5": (["train", "--dataset", "{folder}", "--steps", "2", *TINY_FLAGS, "--ema-decay", "5",
                       "--out-dir", "{tmp}/t"], ["--ema-decay", "[0, 1)"]),
    # config files
    "--config with an unknown key": (["train", "--config", "{tmp}/bad.toml"], ["--config bad.toml", "did you mean 'steps'"]),
}


if torch.cuda.is_available():                 # a GPU machine has CUDA: that case is not an error there
    del CASES["--device cuda without a GPU"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The bad (and one good) files the table refers to."""
    tmp = tmp_path_factory.mktemp("inputs")
    np.savez(tmp / "ok.npz", images=np.zeros((4, 28, 28), np.uint8), labels=np.arange(4))
    np.savez(tmp / "float.npz", images=np.zeros((4, 28, 28), np.float32))
    np.savez(tmp / "mismatch.npz", images=np.zeros((4, 28, 28), np.uint8), labels=np.arange(3))
    np.savez(tmp / "noimages.npz", pictures=np.zeros((4, 28, 28), np.uint8))
    np.savez(tmp / "objects.npz", images=np.array([{"a": 1}, None], dtype=object))
    (tmp / "text.npz").write_text("this is not a numpy file\n")
    (tmp / "bad.toml").write_text("stpes = 3\n")
    np.save(tmp / "array.npy", np.zeros((4, 28, 28), np.uint8))
    (tmp / "array.npy").rename(tmp / "array.npz")
    np.savez(tmp / "negative.npz", images=np.zeros((4, 28, 28), np.uint8), labels=np.array([0, -1, 3, 2]))
    return tmp


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line_exit_2_and_changes_nothing(case, run, folder, inputs, capsys):
    argv, words = CASES[case]
    argv = [str(a).format(run=run, folder=folder, tmp=inputs) for a in argv]
    before = _snapshot(run, inputs)
    code, err = _run_main(argv, capsys)
    assert code == 2, (case, err)
    line = _error_line(err)
    for word in words:
        assert word.lower() in line.lower(), (case, word, line)
    assert _snapshot(run, inputs) == before                          # nothing written or overwritten
    assert not (inputs / "t").exists() and not (inputs / "x.png").exists() and not (inputs / "x.npz").exists()


# -- non-finite inputs to sample() ------------------------------------------------------------------

def test_sample_refuses_non_finite_inputs_and_names_them(tiny_unet):
    from ddpm_teach.samplers import DDIMSampler, sample
    from ddpm_teach.schedules import NoiseSchedule

    schedule = NoiseSchedule.from_name("linear", 50)
    model = tiny_unet(num_classes=3)
    sampler = DDIMSampler(schedule, steps=5)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number, got nan"):
        sample(model, sampler, 2, labels=0, guidance_scale=float("nan"), progress=False)
    x_T = torch.randn(2, 1, 16, 16)
    x_T[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="x_T contains NaN"):
        sample(model, sampler, x_T=x_T, progress=False)
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
            DDIMSampler(schedule, steps=5, eta=bad)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(ValueError, match="weights contain NaN"):
        sample(model, sampler, 2, progress=False)


def test_sample_refuses_a_non_finite_result(tiny_unet, monkeypatch):
    from ddpm_teach.samplers import DDIMSampler, sample
    from ddpm_teach.schedules import NoiseSchedule

    model = tiny_unet()
    monkeypatch.setattr(model, "forward", lambda x, t, labels=None: x * float("nan"))    # e.g. an fp16 overflow
    with pytest.raises(FloatingPointError, match="non-finite"):
        sample(model, DDIMSampler(NoiseSchedule.from_name("linear", 50), steps=3), 2, progress=False)


def test_a_checkpoint_with_nan_weights_is_an_error_not_black_images(run, tmp_path, capsys):
    from ddpm_teach.checkpoint import save_checkpoint

    ckpt = load_checkpoint(run / "checkpoint.pt")
    first = next(iter(ckpt["ema"]))
    ckpt["ema"][first] = torch.full_like(ckpt["ema"][first], float("nan"))
    save_checkpoint({k: v for k, v in ckpt.items() if k != "format"}, tmp_path / "nan.pt")
    code, err = _run_main(["sample", "--checkpoint", tmp_path / "nan.pt", "--n", "2", "--steps", "2",
                           "--device", "cpu", "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "weights contain NaN" in _error_line(err)
    assert not (tmp_path / "x.png").exists()


# -- what --resume may change ------------------------------------------------------------------------

def test_resume_applies_and_reports_the_flags_it_may_change(run, tmp_path, capsys):
    copy = tmp_path / "r"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    assert main(["train", "--resume", str(copy / "checkpoint.pt"), "--steps", "4", "--lr", "0.5", "--grad-clip", "0.25",
                 "--log-every", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "lr 0.0002 → 0.5" in out and "grad_clip 1.0 → 0.25" in out and "steps 3 → 4" in out
    ckpt = load_checkpoint(copy / "checkpoint.pt")
    config = ckpt["train_config"]
    assert (config["lr"], config["grad_clip"], config["log_every"], ckpt["step"]) == (0.5, 0.25, 3, 4)
    # the new lr really drove the optimizer: step 3 ran at 0.5 × the cosine's multiplier at step 3
    from ddpm_teach.training import TrainConfig, lr_at
    assert ckpt["optimizer"]["param_groups"][0]["initial_lr"] == 0.5
    assert ckpt["lr_scheduler"]["base_lrs"] == [0.5]
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5 * lr_at(4, TrainConfig.from_dict(config)))


def test_resume_with_the_same_values_is_not_a_change(run, tmp_path, capsys):
    copy = tmp_path / "r"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    # --T 20 and --batch-size 4 are the run's own values: not refused
    assert main(["train", "--resume", str(copy / "checkpoint.pt"), "--T", "20", "--batch-size", "4", "--device", "cpu"]) == 0
    assert "changed" not in capsys.readouterr().out


# -- files: orphans, modes, overwrite -----------------------------------------------------------------

def test_orphan_temporaries_of_a_killed_save_are_removed_at_start(run, tmp_path):
    copy = tmp_path / "r"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    orphans = [copy / ".checkpoint.pt.abc123.tmp", copy / ".checkpoint.pt.def456.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    other = copy / ".notes.txt.tmp"                                    # not ours: kept
    other.write_text("keep me")
    assert main(["train", "--resume", str(copy / "checkpoint.pt"), "--steps", "4", "--device", "cpu"]) == 0
    assert not any(o.exists() for o in orphans) and other.exists()
    assert load_checkpoint(copy / "checkpoint.pt")["step"] == 4


def test_checkpoints_follow_the_umask(run, tmp_path):
    from ddpm_teach.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        path = save_checkpoint({"kind": "x"}, tmp_path / "a.pt")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644                # readable by others, as the umask says
        os.umask(0o077)
        path = save_checkpoint({"kind": "x"}, tmp_path / "b.pt")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert stat.S_IMODE((run / "checkpoint.pt").stat().st_mode) == 0o666 & ~old


def test_a_fresh_run_that_fails_before_saving_leaves_no_folder(folder, tmp_path, monkeypatch, capsys):
    """config.toml is written before the first step; a run that then fails (here: its first step
    raises) removes it, and the folders it made, so a retry is not refused as "already holds a run"."""
    from ddpm_teach.trainer import Trainer

    def fail(self, *args, **kwargs):
        raise ValueError("the first step failed")

    monkeypatch.setattr(Trainer, "train", fail)
    out = tmp_path / "new" / "run"
    code, err = _run_main(["train", "--dataset", folder, "--steps", "2", *TINY_FLAGS, "--out-dir", out], capsys)
    assert code == 2 and "the first step failed" in _error_line(err)
    assert not (tmp_path / "new").exists()


def test_overwrite_starts_a_run_afresh(run, folder, tmp_path):
    copy = tmp_path / "r"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    assert main(["train", "--dataset", str(folder), "--steps", "2", *TINY_FLAGS, "--out-dir", str(copy),
                 "--overwrite"]) == 0
    assert load_checkpoint(copy / "checkpoint.pt")["step"] == 2


def test_export_with_overwrite_replaces_an_inference_file(run, tmp_path):
    out = tmp_path / "small.pt"
    assert main(["export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(out)]) == 0
    assert main(["export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out)["ema"] is None


# -- real processes: a signal mid-run, two runs at once ----------------------------------------------

def _wait_for(predicate, proc, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, finish(proc).stderr
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigint_mid_run_then_resume_is_exact(folder, tmp_path):
    """A real SIGINT to a real `train` process: it stops at the end of its step, saves, exits 130,
    and `--resume` continues bit for bit like a run that was never interrupted."""
    flags = ["train", "--dataset", folder, "--steps", "200", *TINY_FLAGS, "--checkpoint-every", "0"]
    straight = finish(start_cli(*flags, "--out-dir", tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    proc = start_cli(*flags, "--out-dir", tmp_path / "cut")
    # wait until it is training: it prints its "model: ..." line just before the first step
    while not proc.stdout.readline().startswith("model:"):
        assert proc.poll() is None, finish(proc).stderr
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    result = finish(proc)
    if result.returncode == 0:
        pytest.skip("the run finished before the signal arrived (a very fast machine)")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    stopped = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"]
    assert 0 < stopped < 200
    resumed = finish(start_cli("train", "--resume", tmp_path / "cut" / "checkpoint.pt", "--device", "cpu"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert a["loss_history"] == b["loss_history"] and a["step"] == b["step"] == 200
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_is_refused(folder, tmp_path):
    out = tmp_path / "shared"
    first = start_cli("train", "--dataset", folder, "--steps", "100000", *TINY_FLAGS, "--checkpoint-every", "5",
                      "--out-dir", out)
    _wait_for(lambda: (out / "checkpoint.pt").exists(), first)
    second = finish(start_cli("train", "--dataset", folder, "--steps", "5", *TINY_FLAGS, "--out-dir", out))
    assert second.returncode == 2
    line = _error_line(second.stderr)
    assert "in use by another training run" in line and f"process {first.pid}" in line and "--out-dir" in line
    first.send_signal(signal.SIGTERM)                                 # the first run is unharmed: it saves and stops
    result = finish(first)
    assert result.returncode == 130, result.stderr
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] >= 5 and ckpt["train_config"]["steps"] == 100000
    assert not (out / ".lock").exists()                               # released


# -- a read-only and a full file system -----------------------------------------------------------------

def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    except FileNotFoundError:          # no mount command on this machine
        return False
    return result.returncode == 0


@pytest.fixture
def mounts(tmp_path):
    mounted = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, options):
            pytest.skip("this machine does not allow mounting a tmpfs (needs root)")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_read_only_file_system_is_refused_before_the_work(mounts, folder, capsys):
    read_only = mounts("ro", "ro,size=1m")
    for argv, flag in ((["sample", "--checkpoint", SHIPPED_DDPM, "--n", "2", "--steps", "2", "--out", read_only / "x.png"],
                        "--out"),
                       (["train", "--dataset", folder, "--steps", "2", *TINY_FLAGS, "--out-dir", read_only / "run"],
                        "--out-dir"),
                       (["export", "--checkpoint", SHIPPED_DDPM, "--out", read_only / "x.pt"], "--out")):
        code, err = _run_main([str(a) for a in argv], capsys)
        assert code == 2
        line = _error_line(err)
        assert flag in line and "read-only" in line and "choose another location" in line


def test_full_disk_is_named_and_leaves_nothing_behind(mounts, folder, capsys):
    """A disk too small for the checkpoint: ENOSPC is named (not torch's "unexpected pos"), the
    temporary file is removed, and the run stops with exit code 2."""
    tiny = mounts("tiny", "size=64k")
    code, err = _run_main(["train", "--dataset", str(folder), "--steps", "2", *TINY_FLAGS, "--out-dir", str(tiny / "run")],
                          capsys)
    assert code == 2
    line = _error_line(err)
    assert "no space left" in line and "checkpoint.pt" in line and "unexpected pos" not in line
    assert not list((tiny / "run").glob(".checkpoint.pt.*.tmp")) and not (tiny / "run" / "checkpoint.pt").exists()
    # and a disk that is full already is refused before the work
    fd = os.open(tiny / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 1024):
            pass
    except OSError:                                                   # ENOSPC: the disk is full now
        pass
    finally:
        os.close(fd)
    code, err = _run_main(["sample", "--checkpoint", str(SHIPPED_DDPM), "--n", "2", "--steps", "2",
                           "--out", str(tiny / "x.png")], capsys)
    assert code == 2 and "disk is full" in _error_line(err)
