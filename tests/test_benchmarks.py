"""The benchmark scripts (benchmarks/) run end to end at ``--smoke`` size and print their ratio
line with a positive, finite number.  Needs the optional ``bench`` extra (diffusers); skipped
without it.  The numbers themselves are not checked: at this size they mean nothing."""
from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("diffusers", reason="the benchmarks compare against diffusers: pip install -e '.[bench]'")


def _ratio(output: str, what: str) -> float:
    match = re.search(rf"^ratio ours/diffusers {what} img/s: (\S+)$", output, flags=re.MULTILINE)
    assert match, f"no 'ratio ours/diffusers {what} img/s: X' line in:\n{output}"
    return float(match.group(1))


@pytest.mark.slow
def test_train_throughput_smoke(capsys):
    from benchmarks import train_throughput

    assert train_throughput.main(["--smoke", "--threads", "1"]) == 0
    output = capsys.readouterr().out
    ratio = _ratio(output, "train")
    assert math.isfinite(ratio) and ratio > 0
    assert "fwd MFLOP/img" in output and "1,112,801" in output  # the FLOP table and the matched sizes


@pytest.mark.slow
def test_sample_throughput_smoke(capsys):
    from benchmarks import sample_throughput

    assert sample_throughput.main(["--smoke", "--threads", "1", "--checkpoint-threads", "1"]) == 0
    output = capsys.readouterr().out
    ratio = _ratio(output, "sample")
    assert math.isfinite(ratio) and ratio > 0
    # the matched pair (same spacing, ε re-derived from the clipped x̂_0) agrees to float precision
    matched = re.search(r"timed pair\)\s+\d+\s+(\S+)", output)
    assert matched and float(matched.group(1)) < 1e-3, output
    # the speed-up rows' FID check: an allocator changes no arithmetic, so its images and FID are the
    # baseline's exactly (tcmalloc only where installed); the baseline from other noise is the yardstick
    fids = {m.group(1): (m.group(2), float(m.group(3)))
            for m in re.finditer(r"^(glibc malloc \(baseline\)|glibc tunables|tcmalloc)\s{2,}\S+.*?(\S+)\s+([0-9.]+)$",
                                 output, flags=re.MULTILINE)}
    assert {"glibc malloc (baseline)", "glibc tunables"} <= set(fids), output
    for allocator in set(fids) - {"glibc malloc (baseline)"}:
        assert fids[allocator] == ("0.0e+00", fids["glibc malloc (baseline)"][1])
    other = re.search(re.escape(sample_throughput.NOISE_ROW) + r"\s+([0-9.]+)$", output, flags=re.MULTILINE)
    assert other and float(other.group(1)) != fids["glibc malloc (baseline)"][1], output
    assert re.search(r"^FID check at N=\d+: the baseline from other noise moves its FID by [0-9.]+", output, flags=re.MULTILINE)


@pytest.mark.slow
def test_fast_path_smoke(capsys, tmp_path):
    from benchmarks import fast_path

    assert fast_path.main(["--smoke", "--threads", "1", "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    for line in ("ratio ours/diffusers train img/s in this run", "ratio diffusers/ours classifier-FID at equal wall-clock budget"):
        match = re.search(rf"^{re.escape(line)}[^:]*: (\S+)$", output, flags=re.MULTILINE)
        assert match and math.isfinite(float(match.group(1))) and float(match.group(1)) > 0, (line, output)
    fids = re.findall(r"^(ours|diffusers)\s.*\s(\d+\.\d\d)$", output, flags=re.MULTILINE)  # the table rows
    assert [name for name, _ in fids] == ["ours", "diffusers"], output
    assert all(math.isfinite(float(fid)) and float(fid) > 0 for _, fid in fids)
    assert output.count("recognisable (classifier-FID <=") == 2
    for name in ("fast_path_ours.png", "fast_path_diffusers.png", "fast_path_ours.npz", "fast_path.json"):
        assert (tmp_path / name).exists(), name

    # the equal-steps comparison: ours reused from that run, diffusers trained exactly as many steps
    import json

    first = json.loads((tmp_path / "fast_path.json").read_text())
    again = tmp_path / "equal_steps"
    assert fast_path.main(["--smoke", "--threads", "1", "--reuse-ours", str(tmp_path), "--peer-steps", "ours",
                           "--skip-ours-extras", "--out", str(again)]) == 0
    output = capsys.readouterr().out
    assert "ratio diffusers/ours classifier-FID at equal steps and batch" in output
    result = json.loads((again / "fast_path.json").read_text())
    ours, peer = result["rows"]
    assert ours["steps"] == peer["steps"] == first["rows"][0]["steps"]
    assert [s["sampler"] for s in result["sampling"] if s["model"] == "ours"] == ["ddpm_teach DDIMSampler, fp32"]


@pytest.mark.slow
def test_precision_check_smoke(capsys):
    from benchmarks import precision_check

    assert precision_check.main(["--smoke", "--threads", "1"]) == 0
    output = capsys.readouterr().out
    match = re.search(r"^ratio fp32/fast-path classifier-FID: (\S+)$", output, flags=re.MULTILINE)
    assert match and math.isfinite(float(match.group(1))) and float(match.group(1)) > 0, output
    assert re.search(r"^fp32 eager\s", output, flags=re.MULTILINE), output


def test_quality_tables_target_lines():
    from benchmarks.quality_tables import target_lines

    def row(table, setting, fid, accuracy=None, n=1000):
        return {"table": table, "setting": setting, "fid": fid, "n": n, **({} if accuracy is None else {"accuracy": accuracy})}

    rows = [row("ddim", "DDIM-20 η=0.0", 5.0), row("ddim", "DDIM-50 η=0.0", 3.0),
            row("ddpm", "DDPM-1000 β̃", 2.8), row("ddpm", "DDPM-1000 β", 2.0),
            row("guidance", "s=1 (w=0) DDIM-50", 4.0, 0.90), row("guidance", "s=2 (w=1) DDIM-50", 4.4, 0.985),
            row("guidance", "s=3 (w=2) DDIM-50", 6.0, 0.99)]
    lines = target_lines(rows)
    # the stricter DDPM-1000 reference (β, FID 2.0) is used: 3.0/2.0 = 1.5 > 1.2, 5.0/2.0 = 2.5 > 2
    assert "DDIM-50 η=0 / best DDPM-1000 (DDPM-1000 β, N=1000) FID: 1.50 (target ≤ 1.2: NOT met)" in lines
    assert "DDIM-20 η=0 / best DDPM-1000 (DDPM-1000 β, N=1000) FID: 2.50 (target ≤ 2.0: NOT met)" in lines
    assert "accuracy at s=2: 98.5% (target ≥ 98%: met)" in lines
    # the best FID over s is s=1 itself here: ratio 1.00
    assert "best-s FID / unguided conditional (s=1) FID: 1.00 at s=1 (target ≤ 1.2: met)" in lines
    assert target_lines([]) == []

    # DDPM rows at a smaller N: FIDs at different N are not compared; a same-N DDIM reference is used
    small = [row("ddim", "DDIM-50 η=0.0", 3.0), row("ddpm", "DDPM-1000 β̃", 4.0, n=250)]
    assert target_lines(small) == ["DDIM-50 against DDPM-1000: not compared (N=1000 against N=250)"]
    small.append(row("ddpm", "DDIM-50 η=0.0 (same N)", 4.4, n=250))
    assert "DDIM-50 η=0 / best DDPM-1000 (DDPM-1000 β̃, N=250) FID: 1.10 (target ≤ 1.2: met)" in target_lines(small)


@pytest.mark.slow
def test_quality_tables_smoke(capsys, tmp_path):
    import json

    from benchmarks import quality_tables

    from ddpm_teach.devices import native_precision

    precision = native_precision()      # emulated bf16 (AVX2-only CPUs) is far slower
    out = tmp_path / "q.json"
    assert quality_tables.main(["--quick", "--n", "12", "--tables", "ddim", "guidance", "--precision", precision,
                                "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    settings = [(r["table"], r["setting"], r["precision"]) for r in saved["rows"]]
    assert ("ddim", "DDIM-50 η=0.0", "fp32") in settings        # the fp32 control row next to the bf16 ones
    assert ("ddim", "DDIM-50 η=0.0", precision) in settings
    assert [s for t, s, _ in settings if t == "guidance"] == ["s=0 (w=-1) DDIM-50", "s=1 (w=0) DDIM-50", "s=2 (w=1) DDIM-50"]
    assert not any(t in ("ddpm", "learned_var") for t, _, _ in settings)
    for r in saved["rows"]:
        assert r["n"] == 12 and math.isfinite(r["fid"]) and r["fid_floor"] > 0
    assert all(0 <= r["accuracy"] <= 1 for r in saved["rows"] if r["table"] == "guidance")
    assert any(line.startswith("accuracy at s=2") for line in saved["targets"])
    assert "| classifier-FID | floor at N |" in capsys.readouterr().out


@pytest.mark.slow
def test_quality_tables_resume(capsys, tmp_path):
    """--resume keeps the rows already measured (bit for bit, not re-sampled), measures only the
    missing ones, carries along rows of tables not selected now, and refuses a file from another
    seed or one that is not a quality_tables JSON."""
    import argparse
    import json

    from benchmarks import quality_tables

    out = tmp_path / "q.json"
    common = ["--quick", "--n", "8", "--out", str(out)]
    assert quality_tables.main(common + ["--tables", "ddim"]) == 0
    first = json.loads(out.read_text())["rows"]
    assert {r["table"] for r in first} == {"ddim"}

    assert quality_tables.main(common + ["--resume", "--tables", "guidance"]) == 0
    second = json.loads(out.read_text())
    by_table = {}
    for r in second["rows"]:
        by_table.setdefault(r["table"], []).append(r)
    assert by_table["ddim"] == first                                  # kept exactly, seconds included
    assert [r["setting"] for r in by_table["guidance"]] == ["s=0 (w=-1) DDIM-50", "s=1 (w=0) DDIM-50", "s=2 (w=1) DDIM-50"]
    assert second["earlier_commands"][-1].endswith("--tables ddim")
    assert any(line.startswith("accuracy at s=2") for line in second["targets"])

    # a row asked for again is kept, not measured: the printout says so and the values are identical
    capsys.readouterr()
    assert quality_tables.main(common + ["--resume", "--tables", "ddim"]) == 0
    assert "kept from the earlier run" in capsys.readouterr().out
    third = json.loads(out.read_text())["rows"]
    assert sorted(third, key=quality_tables.row_key) == sorted(second["rows"], key=quality_tables.row_key)

    # the earlier rows that a stopped run has not reached yet are in every save
    class Stop(Exception):
        pass

    saves = []

    def stop_after_first_save(rows):
        saves.append([r["table"] for r in rows])
        raise Stop

    run_args = argparse.Namespace(quick=True, n=8, ddpm_n=8, tables=["learned_var"], precision="fp32", batch_size=500,
                                  guidance_steps=50, seed=0, device="cpu", ddpm_variances=["fixed_small"])
    with pytest.raises(Stop):
        quality_tables.run(run_args, on_row=stop_after_first_save, done=second["rows"])
    assert saves[0][0] == "learned_var" and {"ddim", "guidance"} <= set(saves[0])
    assert len(saves[0]) == len(second["rows"]) + 1

    with pytest.raises(SystemExit, match="--seed 0, not 3"):
        quality_tables.main(common + ["--resume", "--seed", "3"])
    out.write_text("{not json")
    with pytest.raises(SystemExit, match="not a quality_tables JSON"):
        quality_tables.main(common + ["--resume"])
    with pytest.raises(SystemExit):
        quality_tables.main(["--quick", "--resume"])  # --resume without --out
    assert "--resume needs --out" in capsys.readouterr().err


def test_fast_path_peer_steps_values():
    import argparse

    from benchmarks.fast_path import _peer_steps

    assert _peer_steps("ours") == "ours" and _peer_steps("3510") == 3510
    for bad in ("0", "-5", "many", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive number of steps or 'ours'"):
            _peer_steps(bad)


@pytest.mark.slow
def test_time_to_quality_smoke(capsys, tmp_path):
    """Both sides trained by the same Trainer (the peer through ``network=``), every snapshot scored,
    the ratio line printed, and the JSON, PNG and markdown written."""
    import json

    from benchmarks import time_to_quality

    out = tmp_path / "ttq"
    assert time_to_quality.main(["--smoke", "--threads", "1", "--out", str(out)]) == 0
    output = capsys.readouterr().out
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 0 and out.with_suffix(".md").exists()
    assert set(result["curves"]) == set(time_to_quality.SIDES)
    for side in time_to_quality.SIDES:
        curve, run = result["curves"][side], result["runs"][side]
        assert len(curve) >= 2 and all(math.isfinite(p["fid"]) and p["fid"] > 0 for p in curve)
        assert [p["minutes"] for p in curve] == sorted(p["minutes"] for p in curve)
        assert curve[-1]["step"] == run["steps"] > 0 and run["probe"]["chosen"]["compile"] is False
        assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)
        assert run["parameters"] == 1_112_801                     # the matched peer has our parameter count
    assert math.isfinite(result["own_sampler_final"][time_to_quality.SIDES[1]]["fid"])
    target = result["target"]
    assert target == time_to_quality.common_target(result["curves"])
    match = re.search(r"^ratio peer/ours minutes to FID <= (\S+): (\S+)", output, flags=re.MULTILINE)
    assert match and float(match.group(1)) == target and float(match.group(2)) > 0, output


def test_time_to_quality_target_and_minutes():
    from benchmarks.time_to_quality import common_target, minutes_to

    ours = [{"minutes": 3, "fid": 30.0}, {"minutes": 6, "fid": 8.0}, {"minutes": 9, "fid": 5.04}]
    peer = [{"minutes": 3, "fid": 50.0}, {"minutes": 6, "fid": 12.0}, {"minutes": 9, "fid": 7.0}]
    assert common_target({"a": ours, "b": peer}) == 7.0          # the lowest FID both reach
    assert minutes_to(ours, 7.0) == 9 and minutes_to(peer, 7.0) == 9
    assert common_target({"a": ours, "b": [{"minutes": 3, "fid": 7.01}]}) == 7.1   # rounded up to 0.1
    assert minutes_to(ours, 4.0) is None


def test_equal_steps_ablation_resets_exactly_our_zero_initialised_layers():
    import torch

    from benchmarks.common import COURSE_UNET
    from benchmarks.equal_steps import reset_zero_init
    from ddpm_teach.unet import UNet

    torch.manual_seed(0)
    model = UNet(COURSE_UNET)
    zero = {n for n, p in model.named_parameters() if not p.any() and "norm" not in n}   # (GroupNorm shifts start at 0 too)
    assert zero and all(n.endswith(("conv2.weight", "conv2.bias", "proj.weight", "proj.bias")) or n.startswith("conv_out")
                        for n in zero)
    count = reset_zero_init(model)
    assert count == len(zero) // 2                                  # a weight and a bias per layer
    assert all(p.any() for n, p in model.named_parameters() if n.endswith("weight") and n in zero)


@pytest.mark.slow
def test_equal_steps_smoke(capsys, tmp_path):
    import json

    from benchmarks import equal_steps

    out = tmp_path / "eq"
    rows = ["ours", "diffusers, matched layout", "ours, no zero-init", "ours, 32 groups"]
    assert equal_steps.main(["--smoke", "--threads", "1", "--n", "16", "--out", str(out), "--rows", *rows]) == 0
    output = capsys.readouterr().out
    result = json.loads(out.with_suffix(".json").read_text())
    assert [r["row"] for r in result["rows"]] == rows
    assert all(r["steps"] == 3 and math.isfinite(r["fid"]) for r in result["rows"])
    assert result["rows"][0]["parameters"] == result["rows"][1]["parameters"] == 1_112_801
    assert math.isfinite(result["rows"][1]["fid_own_sampler"])
    match = re.search(r"^ratio peer/ours classifier-FID at equal steps: (\S+)", output, flags=re.MULTILINE)
    assert match and float(match.group(1)) > 0, output


def test_equal_steps_rows_differ_only_in_what_they_name(tmp_path):
    """Every row trains with the same TrainConfig (but the LR-floor ablation's floor) and the same
    UNetConfig (but the 32-group ablation's groups); ours and the matched peer, given the same
    config, start from the same batch order and generator, and after a step have drawn the same
    random numbers (the same t and ε), with the same learning rate."""
    import dataclasses

    import torch

    from benchmarks.equal_steps import ROWS, build_row
    from ddpm_teach.trainer import Trainer
    from helpers_training import random_image_data

    setup = {"mixed_precision": "no", "compile": False, "channels_last": False}
    built = {row: build_row(row, 0, 2, tmp_path / str(i), setup) for i, row in enumerate(ROWS)}
    base_train, base_model = dataclasses.asdict(built["ours"][0]), dataclasses.asdict(built["ours"][1])
    for row, (config, model_config, _) in built.items():
        train_diff = {k for k, v in dataclasses.asdict(config).items() if v != base_train[k]} - {"out_dir"}
        model_diff = {k for k, v in dataclasses.asdict(model_config).items() if v != base_model[k]}
        assert train_diff == ({"min_lr_ratio"} if row == "ours, LR floor 0" else set()), row
        assert model_diff == ({"norm_groups"} if row == "ours, 32 groups" else set()), row

    data = random_image_data(n=256, size=28, num_classes=10)
    trainers = {}
    for row in ("ours", "diffusers, matched layout"):
        config, model_config, network = build_row(row, 0, 2, tmp_path / row.split(",")[0], setup)
        trainers[row] = Trainer(config, model_config, data=data, network=network, overwrite=True)
    ours, peer = trainers.values()
    assert torch.equal(ours.order.indices(0), peer.order.indices(0))
    assert torch.equal(ours.generator.get_state(), peer.generator.get_state())
    for trainer in (ours, peer):
        trainer.train(progress=False)
    assert ours.step == peer.step == 2
    assert torch.equal(ours.generator.get_state(), peer.generator.get_state())          # the same draws
    assert ours.optimizer.param_groups[0]["lr"] == peer.optimizer.param_groups[0]["lr"]
