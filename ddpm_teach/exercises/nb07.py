"""Exercise checks for notebook 07 (classifier-free guidance).

Each check takes the learner's answer, prints ``Correct!`` (and returns True) or a hint that
names the likely slip (and returns False).  The right answers follow the package's convention,

    ε̃ = ε_u + s (ε_c − ε_u)      (ddpm_teach.samplers.guided_model_output)

which is Ho & Salimans (2022) eq. 6, ε̃ = (1 + w) ε_c − w ε_u, with s = w + 1.
"""
from __future__ import annotations

import math

import torch

from . import as_float, report

__all__ = ["EXERCISE_W", "EXERCISE_SCALE", "exercise_eps", "check_scale_from_w", "check_guided_eps",
           "COUNT_SETTING", "count_model_evaluations", "check_model_evaluations"]

EXERCISE_W = 2.0       # exercise 1: the paper's w to convert
EXERCISE_SCALE = 3.0   # exercise 2: the package's s to guide with
# exercise 3: guidance scales swept, images per scale, DDIM steps
COUNT_SETTING = {"scales": (0.0, 1.0, 2.0, 3.0), "n": 100, "steps": 25}


def check_scale_from_w(answer) -> bool:
    """Exercise 1: the paper writes ε̃ = (1 + w) ε_c − w ε_u.  Which s (in ε̃ = ε_u + s(ε_c − ε_u))
    is the paper's w = 2?"""
    value = as_float(answer, strings=True)
    if value is None:
        return report(False, f"give one number, the guidance scale s; got {answer!r}.")
    w = EXERCISE_W
    s = w + 1.0
    if math.isclose(value, s, abs_tol=1e-9):
        return report(True, "", success=f"Correct! s = w + 1 = {s:g}: expand ε_u + s(ε_c − ε_u) = "
                                         "s·ε_c − (s − 1)·ε_u and match it with (1 + w)·ε_c − w·ε_u.")
    wrong = [
        (w, "that is w itself. The two conventions differ by one: expand ε_u + s(ε_c − ε_u) and compare the "
            "coefficient of ε_c with the paper's (1 + w)."),
        (w - 1.0, "the wrong way round: w = s − 1, so s = w + 1."),
        (1.0 + 1.0 / w, "match the coefficients of ε_c: s in ε_u + s(ε_c − ε_u), (1 + w) in the paper's form."),
        (-w, "the coefficient of ε_u is −w in the paper's form and (1 − s) in ours; solve 1 − s = −w for s."),
    ]
    for wrong_value, hint in wrong:
        if math.isclose(value, wrong_value, abs_tol=1e-9):
            return report(False, hint)
    return report(False, "write both forms as a·ε_c + b·ε_u and equate a (or b): ε_u + s(ε_c − ε_u) has "
                         "a = s, the paper's (1 + w)ε_c − wε_u has a = 1 + w.")


def exercise_eps() -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 2's inputs: ε_u and ε_c, two small tensors [2, 1, 2, 2] (seeded)."""
    generator = torch.Generator().manual_seed(7)
    eps_u = torch.randn(2, 1, 2, 2, generator=generator)
    eps_c = torch.randn(2, 1, 2, 2, generator=generator)
    return eps_u, eps_c


def check_guided_eps(answer) -> bool:
    """Exercise 2: ε̃ for ``exercise_eps()`` at s = 3 (``EXERCISE_SCALE``), a tensor [2, 1, 2, 2]."""
    eps_u, eps_c = exercise_eps()
    s = EXERCISE_SCALE
    try:
        value = torch.as_tensor(answer, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        return report(False, f"give a tensor with the shape of ε_c, {tuple(eps_c.shape)}; "
                             f"got {type(answer).__name__}.")
    if value.shape != eps_c.shape:
        return report(False, f"ε̃ has the shape of ε_c, {tuple(eps_c.shape)}; your answer has {tuple(value.shape)}. "
                             "Combine the two tensors element by element.")
    right = eps_u + s * (eps_c - eps_u)

    def _close(x):
        return torch.allclose(value, x, rtol=1e-4, atol=1e-5)

    if _close(right):
        return report(True, "", success=f"Correct! ε̃ = ε_u + {s:g}(ε_c − ε_u) = {s:g}·ε_c − {s - 1:g}·ε_u: "
                                         "it goes past ε_c, away from ε_u.")
    wrong = [
        ((1 + s) * eps_c - s * eps_u, f"that is the paper's form with w = {s:g} (the same as "
                                      f"ε_c + s(ε_c − ε_u)), i.e. s = {s + 1:g}. Here s = {s:g}: start from "
                                      "ε_u, ε̃ = ε_u + s(ε_c − ε_u), or use the paper's form with w = s − 1."),
        (eps_c + s * (eps_u - eps_c), "ε_c and ε_u are swapped: guidance starts from the unconditional ε_u and "
                                      "moves towards (and past) the conditional ε_c."),
        (s * (eps_c - eps_u), "that is only the step s(ε_c − ε_u); add it to ε_u."),
        (eps_c, "that is ε_c, the plain conditional prediction (s = 1). Use s = 3."),
        (eps_u, "that is ε_u, the unconditional prediction (s = 0). Use s = 3."),
        (eps_u + (eps_c - eps_u) / s, "multiply the difference by s, do not divide by it."),
    ]
    for wrong_value, hint in wrong:
        if _close(wrong_value):
            return report(False, hint)
    return report(False, "ε̃ = ε_u + s·(ε_c − ε_u) with s = 3, element by element: "
                         "eps_u, eps_c = ddpm_teach.exercises.nb07.exercise_eps().")


def count_model_evaluations(scales, n: int, steps: int) -> int:
    """UNet evaluations (counted per image) to sample ``n`` images at each scale with ``steps``
    steps: s = 0 and s = 1 need one pass (unconditional or conditional), any other s two."""
    return sum((1 if float(s) in (0.0, 1.0) else 2) * n * steps for s in scales)


def check_model_evaluations(answer) -> bool:
    """Exercise 3: how many UNet evaluations in total (one per image per forward pass) does sampling ``COUNT_SETTING["n"]`` images
    with DDIM-``steps`` at each of ``COUNT_SETTING["scales"]`` take with ``guided_model_output``?"""
    scales, n, steps = COUNT_SETTING["scales"], COUNT_SETTING["n"], COUNT_SETTING["steps"]
    value = as_float(answer, strings=True)
    if value is None or value != int(value):
        return report(False, f"give a whole number of model evaluations; got {answer!r}.")
    value = int(value)
    right = count_model_evaluations(scales, n, steps)
    if value == right:
        return report(True, "", success=f"Correct! {right} evaluations: s = 0 and s = 1 need one pass each "
                                         f"({n * steps} apiece), every other s two ({2 * n * steps} apiece).")
    wrong = [
        (2 * n * steps * len(scales), "guided_model_output takes a shortcut: at s = 1 it only needs ε_c and at "
                                      "s = 0 only ε_u, one pass each. Only the other scales need both."),
        (n * steps * len(scales), "a guided step (s ≠ 0, 1) needs two predictions, ε_c and ε_u: two UNet "
                                  "evaluations per image and step (done as one batch of 2n)."),
        (right + n * steps, "you counted one of s = 0 and s = 1 as two passes. At s = 0, ε̃ = ε_u + 0·(ε_c − ε_u) "
                            "= ε_u, so guided_model_output runs only the unconditional pass; at s = 1, ε̃ = ε_c, only "
                            "the conditional one. One pass each; every other scale needs both."),
        (n * len(scales), "every one of the DDIM steps calls the UNet: multiply by the number of steps."),
        (steps * len(scales), "count per image: the batch has n images, and each step evaluates all of them."),
    ]
    for wrong_value, hint in wrong:
        if value == wrong_value:
            return report(False, hint)
    return report(False, "for each scale: images × steps × (passes per step), with 1 pass at s = 0 or s = 1 "
                         "and 2 otherwise; then add the scales up.")
