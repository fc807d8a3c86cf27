"""ddpm_teach.exercises.nb01: each check accepts the right answer and rejects the usual wrong ones
with a hint.  The right answers are re-derived here from the betas alone (float64 loops), not from
the package's NoiseSchedule, so a wrong coefficient in the package would show up too."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb01
from ddpm_teach.schedules import NoiseSchedule, extract, make_betas


def alpha_bar_loop(T: int = 1000) -> list[float]:
    """ᾱ_t = Π_{s≤t} (1 − β_s) for the linear schedule, by an explicit loop (0-based list)."""
    out, running = [], 1.0
    for beta in np.linspace(1e-4, 0.02, T):
        running *= 1.0 - beta
        out.append(running)
    return out


ALPHA_BAR = alpha_bar_loop()
FIRST_BELOW_HALF = next(i for i, a in enumerate(ALPHA_BAR) if math.sqrt(a) < 0.5)


def assert_correct(ok: bool, capsys) -> None:
    out = capsys.readouterr().out
    assert ok is True
    assert out.strip() == "Correct!"


def assert_hint(ok: bool, capsys, *words: str) -> None:
    out = capsys.readouterr().out
    assert ok is False
    assert out.startswith("Not yet. Hint:"), out
    for word in words:
        assert word in out, f"{word!r} not in the hint {out!r}"


# ------------------------------------------------------------------ exercise 1: ᾱ at paper t = 500
@pytest.mark.parametrize("answer", [ALPHA_BAR[499], round(ALPHA_BAR[499], 4), torch.tensor(ALPHA_BAR[499]),
                                    np.float32(ALPHA_BAR[499]), torch.tensor([ALPHA_BAR[499]])])
def test_alpha_bar_accepts_the_right_answer(answer, capsys):
    assert_correct(nb01.check_alpha_bar_t500(answer), capsys)


def test_alpha_bar_answer_is_what_the_exercise_says():
    schedule = NoiseSchedule(make_betas("linear", 1000))
    assert math.isclose(schedule.alphas_cumprod[499].item(), ALPHA_BAR[499], rel_tol=1e-12)
    assert 0.078 < ALPHA_BAR[499] < 0.079


@pytest.mark.parametrize(
    "answer,words",
    [
        (ALPHA_BAR[500], ("index 500", "499")),                        # the paper's t used as an index
        (ALPHA_BAR[498], ("498",)),
        (math.sqrt(ALPHA_BAR[499]), ("√ᾱ",)),
        (1 - ALPHA_BAR[499], ("1 − ᾱ",)),
        (1 - np.linspace(1e-4, 0.02, 1000)[499], ("α_t = 1 − β_t", "product")),
        (0.5, ("alphas_cumprod[499]",)),
        ("0.0786", ("one number",)),
        (None, ("one number",)),
        (True, ("one number",)),
        (float("nan"), ("one number",)),
        (torch.ones(3), ("one number",)),
    ],
)
def test_alpha_bar_rejects_wrong_answers_with_a_hint(answer, words, capsys):
    assert_hint(nb01.check_alpha_bar_t500(answer), capsys, *words)


# ------------------------------------------------------- exercise 2: first t with √ᾱ_t < 0.5
@pytest.mark.parametrize("answer", [FIRST_BELOW_HALF, float(FIRST_BELOW_HALF), torch.tensor(FIRST_BELOW_HALF),
                                    np.int64(FIRST_BELOW_HALF)])
def test_first_below_half_accepts_the_right_answer(answer, capsys):
    assert FIRST_BELOW_HALF == 368
    assert_correct(nb01.check_first_t_below_half(answer), capsys)


@pytest.mark.parametrize(
    "answer,words",
    [
        (FIRST_BELOW_HALF + 1, ("1-based", "t − 1")),
        (FIRST_BELOW_HALF - 1, ("still",)),
        (next(i for i, a in enumerate(ALPHA_BAR) if a < 0.5), ("ᾱ_t < 0.25",)),
        (999, ("sqrt_alphas_cumprod",)),
        (368.5, ("whole number",)),
        ("368", ("whole number",)),
    ],
)
def test_first_below_half_rejects_wrong_answers_with_a_hint(answer, words, capsys):
    assert_hint(nb01.check_first_t_below_half(answer), capsys, *words)


# ------------------------------------------------------------ exercise 3: x_0 from x_t and ε
def _coef(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t].view(-1, 1, 1, 1)


def right_answer(schedule, x_t, t, eps):
    a = _coef(schedule.alphas_cumprod, t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def right_answer_float32(schedule, x_t, t, eps):
    a = extract(schedule.alphas_cumprod, t, x_t)
    return (x_t - torch.sqrt(1 - a) * eps) / torch.sqrt(a)


def test_predict_x0_accepts_right_answers(capsys):
    assert_correct(nb01.check_predict_x0_from_eps(right_answer), capsys)
    assert_correct(nb01.check_predict_x0_from_eps(right_answer_float32), capsys)


def off_by_one(schedule, x_t, t, eps):
    return right_answer(schedule, x_t, (t + 1).clamp(max=schedule.T - 1), eps)


def uses_alpha(schedule, x_t, t, eps):
    a = _coef(schedule.alphas, t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def forgets_division(schedule, x_t, t, eps):
    a = _coef(schedule.alphas_cumprod, t)
    return x_t - (1 - a).sqrt() * eps


def wrong_sign(schedule, x_t, t, eps):
    a = _coef(schedule.alphas_cumprod, t)
    return (x_t + (1 - a).sqrt() * eps) / a.sqrt()


def no_square_roots(schedule, x_t, t, eps):
    a = _coef(schedule.alphas_cumprod, t)
    return (x_t - (1 - a) * eps) / a


def no_reshape(schedule, x_t, t, eps):
    a = schedule.alphas_cumprod[t]                    # (B,): does not broadcast against (B, C, H, W)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def returns_numpy(schedule, x_t, t, eps):
    return right_answer(schedule, x_t, t, eps).numpy()


def returns_nothing(schedule, x_t, t, eps):
    right_answer(schedule, x_t, t, eps)


def returns_x_t(schedule, x_t, t, eps):
    return x_t


def wrong_shape(schedule, x_t, t, eps):
    return right_answer(schedule, x_t, t, eps).mean(1)


@pytest.mark.parametrize(
    "fn,words",
    [
        (off_by_one, ("off by one",)),
        (uses_alpha, ("α_t = 1 − β_t", "alphas_cumprod")),
        (forgets_division, ("divide",)),
        (wrong_sign, ("sign",)),
        (no_square_roots, ("square roots",)),
        (no_reshape, ("raised RuntimeError", "[B, 1, 1, 1]")),
        (returns_numpy, ("return a tensor",)),
        (returns_nothing, ("return a tensor",)),
        (returns_x_t, ("solve eq. 4",)),
        (wrong_shape, ("shape",)),
        (right_answer(NoiseSchedule.from_name("linear", 10), torch.zeros(1, 1, 1, 1), torch.tensor([0]),
                      torch.zeros(1, 1, 1, 1)), ("pass your function itself",)),
    ],
)
def test_predict_x0_rejects_wrong_functions_with_a_hint(fn, words, capsys):
    assert_hint(nb01.check_predict_x0_from_eps(fn), capsys, *words)


def test_checks_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    nb01.check_predict_x0_from_eps(right_answer)
    assert torch.equal(state, torch.get_rng_state())
