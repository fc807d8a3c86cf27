"""ddpm_teach.exercises.nb07: right answers pass, the typical wrong ones fail with a hint that names
the slip.  The expected values are recomputed here from the paper's form, ε̃ = (1 + w)ε_c − wε_u
(Ho & Salimans 2022, eq. 6), with w = s − 1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb07


# ------------------------------------------------------------------ exercise 1: s from the paper's w
def test_scale_from_w_right_answers(capsys):
    assert nb07.EXERCISE_W == 2.0
    for right in (3, 3.0, np.float64(3.0), torch.tensor(3.0), "3"):
        assert nb07.check_scale_from_w(right) is True
    assert capsys.readouterr().out.count("Correct!") == 5


@pytest.mark.parametrize("wrong, words", [
    (2.0, "that is w itself"),
    (1.0, "wrong way round"),
    (1.5, "coefficients of ε_c"),
    (-2.0, "coefficient of ε_u"),
    (7.0, "a·ε_c + b·ε_u"),
])
def test_scale_from_w_wrong_answers_get_hints(capsys, wrong, words):
    assert nb07.check_scale_from_w(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_scale_from_w_rejects_non_numbers(capsys):
    for bad in (None, [3], "three", True, float("nan")):
        assert nb07.check_scale_from_w(bad) is False
    assert capsys.readouterr().out.count("give one number") == 5


# ------------------------------------------------------------------ exercise 2: ε̃ by hand
def paper_form(eps_u, eps_c, w):
    return (1 + w) * eps_c - w * eps_u                                # Ho & Salimans eq. 6


def test_exercise_inputs_are_fixed():
    a_u, a_c = nb07.exercise_eps()
    b_u, b_c = nb07.exercise_eps()
    assert a_u.shape == a_c.shape == (2, 1, 2, 2)
    assert torch.equal(a_u, b_u) and torch.equal(a_c, b_c) and not torch.equal(a_u, a_c)


def test_guided_eps_right_answers(capsys):
    eps_u, eps_c = nb07.exercise_eps()
    s = nb07.EXERCISE_SCALE
    right = paper_form(eps_u, eps_c, w=s - 1)
    assert nb07.check_guided_eps(right) is True
    assert nb07.check_guided_eps(right.double()) is True
    assert nb07.check_guided_eps(right.numpy()) is True
    assert nb07.check_guided_eps(right.tolist()) is True
    assert capsys.readouterr().out.count("Correct!") == 4


def test_guided_eps_agrees_with_the_package():
    """The check's answer is what guided_model_output computes from a model that returns ε_c or ε_u."""
    from ddpm_teach.samplers import guided_model_output

    eps_u, eps_c = nb07.exercise_eps()

    class TwoAnswers(torch.nn.Module):
        def forward(self, x, t, labels):                              # label 0: ε_c; the null label 1: ε_u
            return torch.where((labels == 1)[:, None, None, None], eps_u.repeat(2, 1, 1, 1)[: len(x)],
                               eps_c.repeat(2, 1, 1, 1)[: len(x)])

        def null_labels(self, n, device=None):
            return torch.ones(n, dtype=torch.long, device=device)

    out = guided_model_output(TwoAnswers(), torch.zeros_like(eps_c), torch.zeros(2, dtype=torch.long),
                              torch.zeros(2, dtype=torch.long), nb07.EXERCISE_SCALE)
    assert nb07.check_guided_eps(out) is True


@pytest.mark.parametrize("make_wrong, words", [
    (lambda u, c, s: paper_form(u, c, w=s), "paper's form with w = 3"),
    (lambda u, c, s: c + s * (u - c), "swapped"),
    (lambda u, c, s: s * (c - u), "only the step"),
    (lambda u, c, s: c + s * (c - u), "start from ε_u"),               # the same as w = s
    (lambda u, c, s: c, "plain conditional"),
    (lambda u, c, s: u, "unconditional prediction"),
    (lambda u, c, s: u + (c - u) / s, "do not divide"),
    (lambda u, c, s: u + c, "element by element"),
])
def test_guided_eps_wrong_answers_get_hints(capsys, make_wrong, words):
    eps_u, eps_c = nb07.exercise_eps()
    assert nb07.check_guided_eps(make_wrong(eps_u, eps_c, nb07.EXERCISE_SCALE)) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_guided_eps_wrong_shape_or_type(capsys):
    eps_u, eps_c = nb07.exercise_eps()
    right = eps_u + nb07.EXERCISE_SCALE * (eps_c - eps_u)
    assert nb07.check_guided_eps(right[0]) is False
    assert "shape" in capsys.readouterr().out
    assert nb07.check_guided_eps("eps") is False
    assert "give a tensor" in capsys.readouterr().out


# ------------------------------------------------------------------ exercise 3: counting UNet evaluations
def test_model_evaluations_right_answer(capsys):
    setting = nb07.COUNT_SETTING
    assert setting == {"scales": (0.0, 1.0, 2.0, 3.0), "n": 100, "steps": 25}
    right = 100 * 25 * (1 + 1 + 2 + 2)                               # s = 0, 1: one pass; s = 2, 3: two
    assert nb07.count_model_evaluations(setting["scales"], setting["n"], setting["steps"]) == right
    assert nb07.check_model_evaluations(right) is True
    assert nb07.check_model_evaluations(float(right)) is True
    assert nb07.check_model_evaluations(np.int64(right)) is True
    assert capsys.readouterr().out.count("Correct!") == 3


def test_count_matches_the_calls_guided_model_output_makes(tiny_unet):
    """Count real UNet evaluations (per image) through ``sample``."""
    from ddpm_teach.samplers import DDIMSampler, sample
    from ddpm_teach.schedules import NoiseSchedule

    model = tiny_unet(num_classes=2)
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    schedule = NoiseSchedule.from_name("linear", 20)
    scales, n, steps = (0.0, 1.0, 2.0, 3.0), 3, 4
    for s in scales:
        sample(model, DDIMSampler(schedule, steps=steps), n, labels=1, guidance_scale=s,
               generator=torch.Generator().manual_seed(0), progress=False)
    assert sum(seen) == nb07.count_model_evaluations(scales, n, steps) == 3 * 4 * 6


@pytest.mark.parametrize("wrong, words", [
    (20000, "shortcut"),
    (10000, "two predictions"),
    (100 * 25 * (2 + 1 + 2 + 2), "counted one of s = 0 and s = 1 as two passes"),   # s = 0 (or s = 1) as two passes
    (400, "multiply by the number of steps"),
    (100, "count per image"),
    (12345, "add the scales up"),
])
def test_model_evaluations_wrong_answers_get_hints(capsys, wrong, words):
    assert nb07.check_model_evaluations(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_model_evaluations_rejects_non_integers(capsys):
    for bad in (15000.5, "many", None, True):
        assert nb07.check_model_evaluations(bad) is False
    assert capsys.readouterr().out.count("whole number") == 4
