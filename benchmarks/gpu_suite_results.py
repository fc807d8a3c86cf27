"""The GPU suite's results files (see ``benchmarks/gpu_suite.py``): the JSON, rewritten atomically
when a part starts and when it ends, the markdown next to it, and the parts of an earlier run
that this one keeps (a dry run's only into a dry run, a GPU run's only into a GPU run)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from benchmarks.gpu_suite_setup import PARTS, SUITE, TITLES, number_cell
from ddpm_teach.files import atomic_write

__all__ = ["saved_run", "earlier_parts", "Results", "markdown"]


def saved_run(path: Path) -> dict | None:
    """The JSON of an earlier run of this suite at ``path``, or None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and saved.get("suite") == SUITE else None


def earlier_parts(path: Path, dry_run: bool, selected: list[str]) -> dict:
    """The parts of an earlier run written to ``path`` that this run does not redo (a dry run's
    only into a dry run, a GPU run's only into a GPU run)."""
    saved = saved_run(path)
    if saved is None or saved.get("dry_run") != dry_run:
        return {}
    return {part: {"from_earlier_run": saved.get("started_at"), **result}
            for part, result in saved.get("parts", {}).items() if part in PARTS and part not in selected}


class Results:
    """The suite's JSON and markdown, rewritten atomically when a part starts and when it ends."""

    def __init__(self, path: Path, header: dict, earlier: dict):
        self.path, self.header, self.parts = path, header, dict(earlier)

    def record(self, part: str, result: dict) -> None:
        self.parts[part] = result
        payload = {**self.header, "parts": {p: self.parts[p] for p in PARTS if p in self.parts}}
        text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
        atomic_write(self.path, lambda f: f.write(text), binary=False)
        atomic_write(self.path.with_suffix(".md"), lambda f: f.write(markdown(payload)), binary=False)


# ----------------------------------------------------------------------------------------------
# the markdown
# ----------------------------------------------------------------------------------------------

def _table(rows: list[dict], columns: list[tuple[str, Callable[[dict], str]]]) -> list[str]:
    lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows] + [""]



def _md_train(result: dict) -> list[str]:
    lines = [f"{result['setup']}; peer: {result['peer']}; {result['flops']}.", ""]
    lines += _table(result["rows"], [
        ("model", lambda r: r["model"]), ("parameters", lambda r: f"{r['parameters']:,}"),
        ("img/s", lambda r: f"{r['img_per_s']:,.0f}"), ("ms/step", lambda r: f"{r['ms_per_step']:.2f}"),
        ("train GFLOP/img", lambda r: f"{r['train_gflop_per_image']:.3f}"),
        ("TFLOP/s", lambda r: f"{r['achieved_tflops']:.2f}"),
        ("MFU", lambda r: "unknown peak" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%")])
    return lines + [f"ratio ours/peer train img/s: {number_cell(result['ratio_ours_peer_img_per_s'], '.2f', 'n/a')}", ""]


def _md_sample(result: dict) -> list[str]:
    lines = [f"{result['sampler']}, torch.inference_mode; peer: {result['peer']}.", ""]
    lines += _table(result["rows"], [
        ("batch", lambda r: str(r["batch"])), ("precision", lambda r: r["precision"]),
        ("ours img/s", lambda r: f"{r['ours_img_per_s']:,.0f}"),
        ("peer img/s", lambda r: number_cell(r["peer_img_per_s"], ",.0f")),
        ("ours/peer", lambda r: number_cell(r["ratio"], ".2f"))])
    return lines + [f"ratio ours/peer sample img/s: {number_cell(result['ratio_ours_peer_img_per_s'], '.2f', 'n/a')}", ""]


def _md_fid(result: dict) -> list[str]:
    lines = [f"`{result['command']}`; {result['sampler']}, N={result['n']}; minutes {result['minutes']}.", ""]
    return lines + _table(result["rows"], [
        ("minutes", lambda r: f"{r['minutes']:.2f}"), ("step", lambda r: str(r["step"])),
        ("classifier-FID", lambda r: f"{r['fid']:.3f}"),
        ("real-vs-real floor", lambda r: f"{r['fid_floor']:.3f} (N={r['fid_floor_n']})")])


def _md_quality(result: dict) -> list[str]:
    lines = [f"`{result['command']}`: {len(result['rows'])} row(s) in `{result['out']}`, "
             f"{len(result['rows']) - result['rows_before']} new in this run.", ""]
    lines += _table(result["rows"], [
        ("table", lambda r: r["table"]), ("setting", lambda r: r["setting"]), ("precision", lambda r: r["precision"]),
        ("N", lambda r: str(r["n"])), ("classifier-FID", lambda r: f"{r['fid']:.3f}"),
        ("floor at N", lambda r: f"{r['fid_floor']:.3f}"), ("accuracy", lambda r: number_cell(r["accuracy"], ".1%", "")),
        ("device", lambda r: r["device"] or "")])
    return lines + [f"* {line}" for line in result["targets"]] + ([""] if result["targets"] else [])


def _md_memory(result: dict) -> list[str]:
    lines = [f"torch.cuda.max_memory_allocated over two train_step calls, {result['mode']}.", ""]
    return lines + _table(result["rows"], [
        ("model", lambda r: r["model"]), ("px", lambda r: str(r["image_size"])),
        ("parameters", lambda r: f"{r['parameters']:,}"), ("batch", lambda r: f"{r['batch']} x {r['grad_accum']}"),
        ("precision", lambda r: r["precision"]), ("peak MB", lambda r: number_cell(r["peak_mb"], ",.0f"))])


MARKDOWN = {"train": _md_train, "sample": _md_sample, "fid": _md_fid, "quality": _md_quality, "memory": _md_memory}


def markdown(payload: dict) -> str:
    """The results as markdown for the README: one section per part, in the order they run."""
    title = ("# DRY RUN of the GPU suite: CPU, toy sizes (these numbers are not GPU measurements)"
             if payload["dry_run"] else f"# GPU suite: {payload['gpu']}")
    lines = [title, "", f"`{payload['command']}` on {payload['device']}, torch {payload['torch']}, diffusers "
             f"{payload['diffusers']}, started {payload['started_at']}, budget {payload['budget_minutes']:g} min.", ""]
    for number, part in enumerate(PARTS, 1):
        lines += [f"## {number}. {TITLES[part]}", ""]
        result = payload["parts"].get(part)
        if result is None:
            lines += ["not run", ""]
            continue
        earlier = f", from the run started {result['from_earlier_run']}" if result.get("from_earlier_run") else ""
        where = f"{result.get('seconds', 0):.0f} s on {result.get('device', '?')}{earlier}"
        lines += [f"status: {result['status']} ({where})", ""]
        if "rows" in result and "error" not in result:
            lines += MARKDOWN[part](result)
        elif "error" in result:
            lines += [f"error: {result['error']}", ""]
    return "\n".join(lines)



