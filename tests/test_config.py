"""Config files (``train --config run.toml``, ``sample --config ...``): the round trip through the
resolved config that ``train`` writes, flags winning over the file and the file over a preset,
unknown keys and bad values as one-line errors, YAML, and the example files in configs/."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ddpm_teach.cli import _DERIVED_MODEL_FIELDS, dataclass_from_args, main, parse_args
from ddpm_teach.config import ConfigFileError, read_config_file, to_toml, write_run_config
from ddpm_teach.training import TrainConfig, preset
from ddpm_teach.unet import UNetConfig

from helpers_training import REPO


def _configs(args) -> tuple[TrainConfig, dict]:
    model = {f.name: getattr(args, f.name) for f in dataclasses.fields(UNetConfig) if f.name not in _DERIVED_MODEL_FIELDS}
    return dataclass_from_args(TrainConfig, args), model


def _resolved_values(args) -> dict:
    train, model = _configs(args)
    return {**train.to_dict(), **model}


def test_round_trip_through_the_written_config(tmp_path):
    """The options of a run, written as TOML and read back with --config, are the same options."""
    argv = ["train", "--steps", "17", "--schedule", "cosine", "--conditional", "--label-dropout", "0.2",
            "--base-channels", "16", "--channel-mults", "1", "2", "--attention-resolutions", "14", "--lr", "3e-4",
            "--max-minutes", "2.5", "--out-dir", str(tmp_path / "run"), "--no-ema-warmup", "--dataset", "mnist"]
    original = _resolved_values(parse_args(argv))
    path = write_run_config(tmp_path / "config.toml", original)
    assert read_config_file(path)["steps"] == 17                      # real TOML, typed
    again = _resolved_values(parse_args(["train", "--config", str(path)]))
    assert again == {k: (list(v) if isinstance(v, tuple) else v) for k, v in original.items()}
    # every non-default value really travelled (the equality is not that of two default configs)
    assert again["schedule"] == "cosine" and again["conditional"] and again["ema_warmup"] is False
    assert again["channel_mults"] == [1, 2] and again["max_minutes"] == 2.5 and again["dataset"] == "mnist"


def test_flags_given_as_well_win_over_the_file_and_the_file_over_a_preset(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('steps = 7\nlr = 0.5\npreset = "cpu-fast"\nbatch_size = 12\n')
    args = parse_args(["train", "--config", str(path), "--lr", "0.25"])
    assert args.lr == 0.25                                            # the flag
    assert args.steps == 7 and args.batch_size == 12                  # the file, over the preset's 100000 and 64
    assert args.base_channels == preset("cpu-fast")["base_channels"]  # the preset, over the dataclass default
    assert args.weight_decay == TrainConfig.weight_decay              # the dataclass default
    # --preset on the command line wins over one named in the file
    path.write_text('preset = "gpu"\n')
    assert parse_args(["train", "--config", str(path), "--preset", "cpu-fast"]).batch_size == 64


def test_sample_takes_a_config_file_and_flags_still_win(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('checkpoint = "ck.pt"\nout = "x.png"\nn = 9\nsampler = "ddpm"\nguidance-scale = 2\n')
    args = parse_args(["sample", "--config", str(path), "--n", "4"])
    assert (args.checkpoint, args.out, args.n, args.sampler, args.guidance_scale) == ("ck.pt", "x.png", 4, "ddpm", 2.0)


def test_sample_without_checkpoint_anywhere_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('out = "x.png"\n')
    with pytest.raises(SystemExit) as info:
        parse_args(["sample", "--config", str(path)])
    assert info.value.code == 2 and "--checkpoint is required" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [
    ("stpes = 5\n", "unknown key 'stpes'; did you mean 'steps'?"),
    ("base_channel = 32\n", "did you mean 'base_channels'?"),
    ("zzzz = 1\n", "unknown key 'zzzz'; see `python -m ddpm_teach train --help`"),
    ('steps = "many"\n', "steps must be int, got 'many'"),
    ("steps = 2.5\n", "steps must be int, got 2.5"),
    ("conditional = 1\n", "conditional must be true or false"),
    ('schedule = "cosin"\n', "schedule must be one of ['linear', 'cosine', 'quadratic', 'sigmoid']"),
    ("channel_mults = 2\n", "channel_mults must be a non-empty list"),
    ("steps = \n", "is not valid TOML"),
    ('preset = "laptop"\n', "unknown preset 'laptop'"),
])
def test_bad_config_files_are_one_line_errors_before_any_work(tmp_path, capsys, text, expected):
    path = tmp_path / "run.toml"
    path.write_text(text)
    out_dir = tmp_path / "out"
    assert main(["train", "--config", str(path), "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and expected in err
    if "preset" not in expected:
        assert "--config run.toml" in err                             # names the file
    assert not out_dir.exists()                                       # nothing was started


def test_missing_and_unsupported_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigFileError, match="does not exist"):
        read_config_file(tmp_path / "nope.toml")
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ConfigFileError, match=r"\.toml"):
        read_config_file(tmp_path / "run.json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    pytest.importorskip("yaml")
    with pytest.raises(ConfigFileError, match="table of keys"):
        read_config_file(tmp_path / "list.yaml")


def test_yaml_config_when_pyyaml_is_installed(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "run.yaml"
    path.write_text("steps: 11\nchannel_mults: [1, 2]\nconditional: true\nmax_minutes: null\n")
    args = parse_args(["train", "--config", str(path)])
    assert args.steps == 11 and args.channel_mults == [1, 2] and args.conditional is True and args.max_minutes is None


def test_toml_writer_escapes_and_leaves_out_none(tmp_path):
    try:
        import tomllib
    except ImportError:                  # Python 3.10
        import tomli as tomllib

    values = {"a": 'quote " and \\ back', "b": None, "c": [1, 2], "d": 1e-5, "e": False, "f": "ünï"}
    text = to_toml(values, header="two\nlines")
    assert text.startswith("# two\n# lines\n") and "b =" not in text
    assert tomllib.loads(text) == {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize("name, command", [("fashion_mnist_small.toml", "train"), ("sample_ddim50.toml", "sample")])
def test_example_config_files_parse(name, command):
    path = REPO / "configs" / name
    file_keys = {k.replace("-", "_") for k in read_config_file(path)}
    args = parse_args([command, "--config", str(path)])
    assert all(getattr(args, key) is not None for key in file_keys)
    if command == "train":
        train, model = _configs(args)
        assert train.steps == 5000 and train.out_dir == "runs/fashion_mnist_small"
        model_config = UNetConfig(**model)                    # a valid UNet for 28×28 images
        assert model_config.channel_mults == (1, 2, 2) and model_config.attention_resolutions == (7,)
    else:
        assert Path(REPO / args.checkpoint).is_file() and args.guidance_scale == 2.0
