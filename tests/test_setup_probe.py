"""The start-up set-up probe (``--probe-setup``, ``ddpm_teach.setup_probe``; issue 17 item 8), the
trainer's ``network=`` (the benchmarks' peer trained by our loop), the faster allocator of the
command line (``ddpm_teach.allocator``) and sampling's ``precision="auto"``."""
from __future__ import annotations

import pytest
import torch

from ddpm_teach import setup_probe
from ddpm_teach.allocator import GLIBC_KEEP_MEMORY, MARKER, allocator_environment
from ddpm_teach.checkpoint import CheckpointError, load_checkpoint, load_diffusion_model
from ddpm_teach.trainer import Trainer
from tests.helpers_training import random_image_data, tiny_model_config, tiny_train_config


@pytest.fixture(autouse=True)
def _one_thread_and_own_cache(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    monkeypatch.setenv("DDPM_TEACH_CACHE", str(tmp_path / "cache"))      # no probe result from another test


def test_a_probe_result_is_reused_on_the_same_machine_and_config(tmp_path, monkeypatch, capsys):
    calls = []
    real = setup_probe.probe_setup

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(setup_probe, "probe_setup", counting)
    data = random_image_data()

    def run(name, **config):
        trainer = Trainer(tiny_train_config(tmp_path / name, steps=1, probe_setup=True, **config), tiny_model_config(), data)
        trainer.probe_fixed = {"compile": False, "mixed_precision": "no"}
        trainer.train(progress=True)
        return trainer

    first = run("a")
    second = run("b")
    assert len(calls) == 1 and second.setup_probe["cached"] and second.setup_probe["chosen"] == first.setup_probe["chosen"]
    assert "as measured on this machine before" in capsys.readouterr().out
    run("c", batch_size=4)                                        # another batch: another key, probed afresh
    assert len(calls) == 2
    monkeypatch.setenv("DDPM_TEACH_PROBE_CACHE", "0")
    run("d")
    assert len(calls) == 3


def _result(precision="no", channels_last=False, compile=False, rate=100.0):
    return {"setup": {"mixed_precision": precision, "channels_last": channels_last, "compile": compile},
            "img_per_s": rate}


def test_the_fastest_setup_wins_unless_a_simpler_one_is_within_the_margin():
    plain, bf16 = _result(rate=100.0), _result("bf16", rate=150.0)
    assert setup_probe._pick([plain, bf16]) is bf16
    close = _result("bf16", rate=100.0 * (1 + setup_probe.MARGIN / 2))
    assert setup_probe._pick([plain, close]) is plain                       # noise does not pick bf16
    compiled = _result("bf16", compile=True, rate=160.0)
    assert setup_probe._pick([plain, bf16, compiled]) is compiled
    slow_compiled = _result("bf16", compile=True, rate=140.0)               # compile lost (the AMD EPYC case)
    assert setup_probe._pick([plain, bf16, slow_compiled]) is bf16


def test_candidates_follow_native_bf16_and_respect_fixed_fields(monkeypatch):
    import ddpm_teach.devices as devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert {c["mixed_precision"] for c in setup_probe.candidate_setups(cpu)} == {"no"}    # emulated bf16: never
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    every = setup_probe.candidate_setups(cpu)
    assert len(every) == 4 and not any(c["compile"] for c in every)
    assert every[0] == {"mixed_precision": "no", "channels_last": False, "compile": False}
    fixed = setup_probe.candidate_setups(cpu, {"channels_last": False, "mixed_precision": "bf16"})
    assert fixed == [{"mixed_precision": "bf16", "channels_last": False, "compile": False}]


def test_probe_leaves_the_run_exactly_as_without_it(tmp_path):
    """The probe trains copies: a probed run (fp32, with or without channels_last, no compile)
    ends with the weights of a run without the probe (to round-off: channels_last may sum in
    another order; a probe step on the real model would move them by ~lr), and its choice and
    timings are kept in the checkpoint; a resumed run does not probe again."""
    data = random_image_data()
    plain = Trainer(tiny_train_config(tmp_path / "plain", steps=3), tiny_model_config(dropout=0.0), data)
    plain.train(progress=False)
    probed = Trainer(tiny_train_config(tmp_path / "probed", steps=3, probe_setup=True), tiny_model_config(dropout=0.0), data)
    probed.probe_fixed = {"mixed_precision": "no", "compile": False}
    probed.train(progress=False)
    for a, b in zip(plain.model.state_dict().values(), probed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ckpt = load_checkpoint(probed.checkpoint_path, kind="diffusion")
    candidates = ckpt["setup_probe"]["candidates"]
    assert [c["channels_last"] for c in candidates] == [False, True] and all(c["img_per_s"] > 0 for c in candidates)
    assert ckpt["setup_probe"]["chosen"]["mixed_precision"] == "no" and not ckpt["setup_probe"]["chosen"]["compile"]
    assert ckpt["setup_probe"]["cpu"] and ckpt["train_config"]["channels_last"] == ckpt["setup_probe"]["chosen"]["channels_last"]
    resumed = Trainer.resume(probed.checkpoint_path, data, steps=4)
    assert resumed.setup_probe == ckpt["setup_probe"]
    resumed.probe = lambda *a, **k: pytest.fail("a resumed run probed again")
    resumed.train(progress=False)


def test_probe_applies_its_choice_to_the_run(tmp_path, monkeypatch):
    """With channels_last measured fastest (a stubbed timing), the run trains channels_last."""
    def fake_time(model, setup, batches, step_fn, device, warmup, steps):
        step_fn(model, torch.optim.SGD(model.parameters(), lr=0.0), batches[0], torch.Generator(), None)
        return {"setup": setup, "img_per_s": 200.0 if setup["channels_last"] else 100.0, "warmup_seconds": 0.0}

    monkeypatch.setattr(setup_probe, "time_setup", fake_time)
    trainer = Trainer(tiny_train_config(tmp_path, steps=2, probe_setup=True), tiny_model_config(), random_image_data())
    trainer.probe_fixed = {"compile": False}
    trainer.train(progress=False)
    assert trainer.config.channels_last and not trainer.config.compile
    assert trainer.model.down_levels[0].blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert load_checkpoint(trainer.checkpoint_path, kind="diffusion")["train_config"]["channels_last"] is True


def test_one_candidate_left_is_not_timed(tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path, steps=1, probe_setup=True), tiny_model_config(), random_image_data())
    trainer.probe_fixed = {"mixed_precision": "no", "channels_last": True, "compile": False}
    trainer.train(progress=False)
    assert trainer.setup_probe["candidates"] == [] and trainer.setup_probe["seconds"] == 0.0
    assert trainer.config.channels_last and trainer.setup_probe["chosen"]["channels_last"]


def test_a_failing_compile_keeps_the_run_eager(tmp_path, monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    trainer = Trainer(tiny_train_config(tmp_path, steps=1, probe_setup=True), tiny_model_config(), random_image_data())
    trainer.probe_fixed = {"mixed_precision": "no", "channels_last": False}
    trainer.train(progress=False)
    assert trainer.setup_probe["chosen"]["compile"] is False and trainer.step == 1


def _record_probe_fixed(monkeypatch, seen: list):
    def fake_probe(model, batches, step_fn, device, *, fixed=None, **kwargs):
        seen.append(dict(fixed))
        return {"chosen": {"mixed_precision": "no", "channels_last": False, "compile": False}, "candidates": [],
                "seconds": 0.0, "cpu": "test", "device": "cpu", "steps": 0}

    monkeypatch.setattr(setup_probe, "probe_setup", fake_probe)


def test_a_budget_too_short_to_repay_a_compile_probes_eager_only(tmp_path, monkeypatch, capsys):
    """Under COMPILE_MIN_BUDGET_MINUTES the probe does not try torch.compile (and says why); from it,
    or with no budget, it does; a compile the user asked for still stands."""
    from ddpm_teach.trainer import COMPILE_MIN_BUDGET_MINUTES

    seen: list = []
    _record_probe_fixed(monkeypatch, seen)
    data = random_image_data()

    def run(name, minutes, fixed=None):
        trainer = Trainer(tiny_train_config(tmp_path / name, steps=1, probe_setup=True, max_minutes=minutes),
                          tiny_model_config(), data)
        trainer.probe_cache = False
        trainer.probe_fixed = dict(fixed or {})
        trainer.train(progress=True)
        return seen[-1]

    assert run("short", COMPILE_MIN_BUDGET_MINUTES / 2) == {"compile": False}
    assert "torch.compile is not tried in a" in capsys.readouterr().out
    assert run("long", COMPILE_MIN_BUDGET_MINUTES) == {}
    assert run("none", None) == {}
    assert run("asked", 1.0, {"compile": True}) == {"compile": True}
    assert "not tried" not in capsys.readouterr().out


def test_a_short_budget_probe_is_not_reused_by_a_long_run(tmp_path, monkeypatch):
    """The budget's rule is part of the probe cache's key: an eager-only result of a short run is
    not reused by a run whose budget can repay a compile (nor the other way round)."""
    from ddpm_teach.trainer import COMPILE_MIN_BUDGET_MINUTES

    seen: list = []
    _record_probe_fixed(monkeypatch, seen)
    data = random_image_data()
    for name, minutes in [("short", 1.0), ("long", COMPILE_MIN_BUDGET_MINUTES), ("short again", 1.0), ("long again", None)]:
        trainer = Trainer(tiny_train_config(tmp_path / name, steps=1, probe_setup=True, max_minutes=minutes),
                          tiny_model_config(), data)
        trainer.train(progress=False)                       # the probe cache is on (DDPM_TEACH_CACHE is this test's)
    assert seen == [{"compile": False}, {}]                 # probed once per key; the last two reused them


def test_a_budget_spent_before_the_first_step_says_why(tmp_path, monkeypatch, capsys):
    """A --max-minutes budget that the probe uses up ends the run at step 0 with a line that says so
    and what to do, instead of a silent empty run."""
    import ddpm_teach.trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "_now", lambda: clock[0])

    def slow_probe(model, batches, step_fn, device, *, fixed=None, **kwargs):
        clock[0] += 120.0                                               # the probe takes 2 minutes
        return {"chosen": {"mixed_precision": "no", "channels_last": False, "compile": False}, "candidates": [],
                "seconds": 120.0, "cpu": "test", "device": "cpu", "steps": 0}

    monkeypatch.setattr(setup_probe, "probe_setup", slow_probe)
    trainer = Trainer(tiny_train_config(tmp_path, steps=5, probe_setup=True, max_minutes=1.0), tiny_model_config(),
                      random_image_data())
    trainer.probe_cache = False
    trainer.train(progress=False)
    out = capsys.readouterr().out
    assert trainer.step == 0
    assert "ran out before the first step (the setup probe took 120 s of it)" in out and "--no-probe-setup" in out


def test_cli_flags_given_are_not_probed(tmp_path, monkeypatch, capsys):
    from ddpm_teach import cli

    seen = {}

    def fake_probe(model, batches, step_fn, device, *, fixed=None, **kwargs):
        seen.update(fixed)
        return {"chosen": {"mixed_precision": "no", "channels_last": False, "compile": False}, "candidates": [],
                "seconds": 0.0, "cpu": "test", "device": "cpu", "steps": 0}

    monkeypatch.setattr(setup_probe, "probe_setup", fake_probe)
    monkeypatch.setenv("DDPM_TEACH_DATA", str(tmp_path / "nodata"))
    folder = tmp_path / "images"
    from PIL import Image
    for k in range(16):
        (folder / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), color=k * 10).save(folder / f"c{k % 2}" / f"{k}.png")
    code = cli.main(["train", "--dataset", str(folder), "--probe-setup", "--no-compile", "--steps", "1", "--batch-size", "4",
                     "--base-channels", "8", "--channel-mults", "1", "2", "--attention-resolutions", "4", "--norm-groups", "4",
                     "--num-heads", "2", "--T", "20", "--out-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 0
    assert seen == {"compile": False}


def test_a_checkpoint_of_another_network_is_refused_by_the_sampler_loader(tmp_path):
    class Other(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x, t, labels=None):
            return self.conv(x)

    trainer = Trainer(tiny_train_config(tmp_path, steps=1), tiny_model_config(), random_image_data(), network=Other())
    trainer.train(progress=False)
    assert isinstance(trainer.model, Other)
    with pytest.raises(CheckpointError, match="Other"):
        load_diffusion_model(trainer.checkpoint_path)


def test_allocator_environment():
    base = {"PATH": "/bin"}
    env = allocator_environment(base, "linux", tcmalloc="/usr/lib/x/libtcmalloc_minimal.so.4")
    assert env["LD_PRELOAD"].endswith("libtcmalloc_minimal.so.4") and env[MARKER] == "1"
    assert allocator_environment(base, "linux", tcmalloc=None)["GLIBC_TUNABLES"] == GLIBC_KEEP_MEMORY
    assert allocator_environment(env, "linux", tcmalloc="x") is None                 # once only
    assert allocator_environment({**base, "DDPM_TEACH_ALLOCATOR": "system"}, "linux", tcmalloc="x") is None
    assert allocator_environment({**base, "LD_PRELOAD": "/mine.so"}, "linux", tcmalloc="x") is None   # the user's wins
    assert allocator_environment(base, "darwin", tcmalloc="x") is None


def test_allocator_settings_and_scrubbing():
    from ddpm_teach.allocator import ALLOCATORS, allocator_settings, without_allocator_settings

    assert allocator_settings("glibc") == {}
    assert allocator_settings("glibc tunables") == {"GLIBC_TUNABLES": GLIBC_KEEP_MEMORY}
    assert allocator_settings("tcmalloc", tcmalloc="/t.so")["LD_PRELOAD"] == "/t.so"
    assert allocator_settings("jemalloc", jemalloc="/j.so")["MALLOC_CONF"].startswith("dirty_decay_ms:-1")
    with pytest.raises(ValueError, match="glibc tunables"):
        allocator_settings("mimalloc")
    assert set(ALLOCATORS) == {"glibc", "glibc tunables", "jemalloc", "tcmalloc"}
    # the restart's environment is exactly "tcmalloc"'s settings plus the marker, and scrubbing removes all of it
    env = allocator_environment({"PATH": "/bin"}, "linux", tcmalloc="/t.so")
    assert env == {"PATH": "/bin", MARKER: "1", **allocator_settings("tcmalloc", tcmalloc="/t.so")}
    assert without_allocator_settings({**env, "DDPM_TEACH_ALLOCATOR": "system", "MALLOC_CONF": "x"}) == {"PATH": "/bin"}


def test_native_precision_is_the_rule_of_precision_auto(monkeypatch):
    import ddpm_teach.devices as devices
    from ddpm_teach.samplers import PRECISIONS, _autocast_dtype

    for native in (False, True):
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda native=native: native)
        assert devices.native_precision() == ("bf16" if native else "fp32")
        assert _autocast_dtype("auto", torch.device("cpu")) is PRECISIONS[devices.native_precision()]
    assert devices.native_precision(torch.device("meta")) == "fp32"


def test_precision_auto_is_bf16_only_where_native(monkeypatch):
    import ddpm_teach.devices as devices
    from ddpm_teach.samplers import _autocast_dtype

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert _autocast_dtype("auto", torch.device("cpu")) is None
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert _autocast_dtype("auto", torch.device("cpu")) is torch.bfloat16


def test_emulated_bf16_sampling_warns(monkeypatch):
    import ddpm_teach.devices as devices
    import ddpm_teach.samplers as samplers

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(samplers, "_warned_emulated_bf16", False)
    with pytest.warns(UserWarning, match="emulated"):
        samplers._autocast_dtype("bf16", torch.device("cpu"))
