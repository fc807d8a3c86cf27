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


@pytest.mark.slow
def test_fast_path_smoke(capsys, tmp_path):
    from benchmarks import fast_path

    assert fast_path.main(["--smoke", "--threads", "1", "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    for line in ("ratio ours/diffusers train img/s in this run", "ratio diffusers/ours classifier-FID at equal budget"):
        match = re.search(rf"^{re.escape(line)}[^:]*: (\S+)$", output, flags=re.MULTILINE)
        assert match and math.isfinite(float(match.group(1))) and float(match.group(1)) > 0, (line, output)
    fids = re.findall(r"^(ours|diffusers)\s.*\s(\d+\.\d\d)$", output, flags=re.MULTILINE)  # the table rows
    assert [name for name, _ in fids] == ["ours", "diffusers"], output
    assert all(math.isfinite(float(fid)) and float(fid) > 0 for _, fid in fids)
    assert output.count("recognisable (classifier-FID <=") == 2
    for name in ("fast_path_ours.png", "fast_path_diffusers.png", "fast_path_ours.npz", "fast_path.json"):
        assert (tmp_path / name).exists(), name


@pytest.mark.slow
def test_precision_check_smoke(capsys):
    from benchmarks import precision_check

    assert precision_check.main(["--smoke", "--threads", "1"]) == 0
    output = capsys.readouterr().out
    match = re.search(r"^ratio fp32/fast-path classifier-FID: (\S+)$", output, flags=re.MULTILINE)
    assert match and math.isfinite(float(match.group(1))) and float(match.group(1)) > 0, output
    assert re.search(r"^fp32 eager\s", output, flags=re.MULTILINE), output
