"""The training runner (notebook 04): Algorithm 1's lines 1 and 6, the loop around
:func:`ddpm_teach.training.train_step`, and everything that is not maths.

:class:`Trainer` owns the model, its EMA, the optimizer and LR schedule, the RNG states, the
checkpoints (atomic, with an exact resume), interrupts (Ctrl-C or SIGTERM stop at the end of the
step they arrive in, then save) and DDP.  It takes its data, device and processes from the
caller: :func:`init_distributed` starts torchrun's process group, :class:`TimeBudget` is
``--max-minutes``.

Exact resume: every random draw of training comes from a generator whose state is saved
(t, ε, label dropout, the flips of ``--hflip``), dropout from torch's global RNG (saved too),
and the batch at step k is a pure function of (seed, k), so a resumed run repeats an
uninterrupted one step for step.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_state_dict_checked, refuse_other_network, save_checkpoint
from .devices import amp_dtype_for, optimizer_options, pick_device
from .files import OutputError, RunLock, check_output_dir, remove_stale_temporaries
from .schedules import NoiseSchedule
from .training import (BatchOrder, NonFiniteLossError, TrainConfig, lr_at, make_ema,
                       random_hflip, train_step, unwrap_model)
from .unet import UNet, UNetConfig

__all__ = ["Trainer", "resume_changes", "TimeBudget", "Processes", "init_distributed", "derive_model_config", "amp_dtype_for",
           "optimizer_options", "probe_and_apply",
           "RESUMABLE_FIELDS", "RunExistsError"]

# what may change when a run is resumed: how long and how fast it trains, and where and how it runs.
# Everything else (the model, T and the schedule, the data and its order, the seed) is fixed by the run.
RESUMABLE_FIELDS = frozenset({"steps", "max_minutes", "lr", "grad_clip", "mixed_precision", "checkpoint_every",
                              "log_every", "device", "out_dir", "threads", "compile", "data_root", "download"})


class RunExistsError(OutputError):
    """A fresh run was pointed at a folder that already holds another run's checkpoint."""


def _now() -> float:
    """The clock of the time budget (a function of its own, so that tests can replace it)."""
    return time.perf_counter()


@dataclass(frozen=True)
class Processes:
    """This process's place in a torchrun job: (rank, local_rank, world_size); (0, 0, 1) alone."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Processes":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                   int(os.environ.get("WORLD_SIZE", 1)))


def init_distributed(device_choice: str = "auto") -> tuple[Processes, torch.device]:
    """Start torchrun's process group (NCCL on GPUs, gloo on CPUs) once, and pick this process's
    device (its own GPU under DDP).  Without torchrun: ``(Processes(), pick_device(device_choice))``."""
    processes, device = Processes.from_env(), pick_device(device_choice)
    if processes.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda" and processes.world_size > 1:
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    return processes, device


def derive_model_config(model_config: UNetConfig | Mapping | None, data, config: TrainConfig) -> UNetConfig:
    """The UNet's config with what the data and the training options decide: image size and
    channels (the data's), ``num_classes`` (conditional runs) and ``learn_sigma``.  The one place
    these are derived; the command line passes its model flags here as a plain mapping."""
    values = model_config.to_dict() if isinstance(model_config, UNetConfig) else dict(model_config or {})
    return UNetConfig(**{**values, "image_size": data.image_size,
                         "in_channels": data.channels, "learn_sigma": config.learn_sigma,
                         "num_classes": len(data.classes) if config.conditional else None})


class TimeBudget:
    """``--max-minutes``: the run stops when the budget is spent, and, after timing steps 10 to 40
    of this sitting (past torch.compile's first ones), :meth:`planned_end` says at which step the
    budget will end, so that the cosine can be fitted to finish with it rather than be cut off."""

    CALIBRATION_STEPS = (10, 40)

    def __init__(self, minutes: float, first_step: int):
        self.minutes, self.seconds, self.first_step = minutes, 60.0 * minutes, first_step
        self.started = _now()
        self._calibration_start: float | None = None

    def spent(self) -> bool:
        return _now() - self.started >= self.seconds

    def planned_end(self, step: int) -> int | None:
        """At the end of the calibration steps, the step at which the budget runs out; else None."""
        done, (first, last) = step - self.first_step, self.CALIBRATION_STEPS
        if done == first:
            self._calibration_start = _now()
        elif done == last and self._calibration_start is not None:
            rate = (last - first) / (_now() - self._calibration_start)          # steps per second
            return step + int((self.seconds - (_now() - self.started)) * rate)
        return None


@contextlib.contextmanager
def _interrupts_at_step_end():
    """Ctrl-C and SIGTERM during the block set a flag instead of stopping mid-step; the loop
    checks ``stop()`` at each step's end.  A second signal stops at once (``forced()``).
    Outside the main thread signals cannot be caught, and this does nothing."""
    state = {"count": 0}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        state["count"] += 1
        if state["count"] > 1:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _rng_state(device: torch.device, generator: torch.Generator) -> dict:
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _all_ranks_max(trainer: "Trainer", value: float) -> float:
    """The largest ``value`` over all processes (just ``value`` without DDP), so that ranks agree."""
    if trainer.world_size == 1:
        return value
    device = trainer.device if trainer.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.item()


def _rng_states_of_all_ranks(trainer: "Trainer") -> list[dict]:
    """Every process's RNG states (a collective: all ranks must call it), rank order."""
    rng = _rng_state(trainer.device, trainer.generator)
    if trainer.world_size == 1:
        return [rng]
    states: list = [None] * trainer.world_size
    dist.all_gather_object(states, {k: v.cpu() for k, v in rng.items()})
    return states


def _save_on_interrupt(trainer: "Trainer", forced: bool) -> None:
    if forced:                   # a second Ctrl-C: the step under way is half done, so nothing is saved
        print(f"\ninterrupted twice, mid-step: not saved; {trainer.checkpoint_path} is the last save")
        return
    if trainer.world_size > 1:   # the other processes may already be gone: keep the last periodic save
        print(f"\ninterrupted at step {trainer.step}; {trainer.checkpoint_path} is the last save")
        return
    print(f"\ninterrupted at step {trainer.step}: saving {trainer.checkpoint_path}; continue with --resume")
    trainer.save()


def _set_rng_state(rng: dict, device: torch.device, generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


class _ProgressBar:
    """tqdm over the run's steps, with the recent loss, the learning rate and images per second."""

    def __init__(self, trainer: "Trainer", end: int, enabled: bool):
        self.bar = tqdm(total=end, initial=trainer.step, desc="train", disable=not enabled, dynamic_ncols=True)
        self.started, self.first = _now(), trainer.step

    def show(self, trainer: "Trainer", end: int) -> None:
        self.bar.update(1)
        cfg, every = trainer.config, max(1, trainer.config.log_every)
        if trainer.step % every == 0 or trainer.step == end:
            recent = trainer.loss_history[-every:]
            images = (trainer.step - self.first) * cfg.batch_size * cfg.grad_accum * trainer.world_size
            self.bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}",
                                 lr=f"{trainer.lr_scheduler.get_last_lr()[0]:.2e}",
                                 img_s=f"{images / max(_now() - self.started, 1e-9):.0f}")

    def retarget(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class RunFolder:
    """A run's output folder: where its checkpoint goes, the lock held while the run writes there,
    and whether the checkpoint in it is this run's own (written or resumed from by it)."""

    def __init__(self, out_dir: str | os.PathLike, overwrite: bool = False):
        self.out_dir, self.overwrite = Path(out_dir), overwrite
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        self.lock, self.owns_checkpoint = RunLock(self.out_dir), False
        self.extra_files: list[Path] = []          # written for the run (config.toml): removed if it never saves

    def written(self, path: Path) -> Path:
        if Path(path).resolve() == self.checkpoint_path.resolve():
            self.owns_checkpoint = True
        return path

    @contextlib.contextmanager
    def claim(self):
        """``with folder.claim(): ...`` holds the lock for the block.  A folder that cannot be
        written, another run writing there, or another run's checkpoint (unless ``overwrite``)
        stop here, before any work.  Temporary files left by a run killed mid-save are removed."""
        check_output_dir(self.out_dir, "--out-dir")
        made = [p for p in (self.out_dir, *self.out_dir.parents) if not p.exists()]     # deepest first
        try:
            with self.lock:
                if self.checkpoint_path.exists() and not (self.owns_checkpoint or self.overwrite):
                    raise RunExistsError(f"--out-dir {self.out_dir} already holds a training run "
                                         f"({self.checkpoint_path}); continue it with --resume, start over with "
                                         "--overwrite, or choose another --out-dir.")
                remove_stale_temporaries(self.out_dir, self.checkpoint_path.name)
                yield self
        finally:
            if not self.checkpoint_path.exists():   # a run that never saved leaves nothing behind
                for extra in self.extra_files:
                    extra.unlink(missing_ok=True)
            for folder in made:            # ... and no folders
                try:
                    folder.rmdir()
                except OSError:
                    break


class Trainer:
    """Owns the model, its EMA, the optimizer and the loop.  In a notebook::

        trainer = Trainer(TrainConfig(steps=500), UNetConfig(base_channels=32), data=data)
        history = trainer.train()
        trainer.save()                      # → {out_dir}/checkpoint.pt
        trainer = Trainer.resume("runs/ddpm/checkpoint.pt", data=data, steps=1000)

    ``device`` defaults to ``pick_device(config.device)`` and ``processes`` to torchrun's
    environment (call :func:`init_distributed` first when there are several).
    """

    def __init__(self, config: TrainConfig, model_config: UNetConfig | Mapping | None, data, *,
                 device: torch.device | None = None, processes: Processes | None = None, overwrite: bool = False,
                 folder: RunFolder | None = None, network: torch.nn.Module | None = None):
        self.config, self.processes = config, processes or Processes.from_env()
        self.folder = folder or RunFolder(config.out_dir, overwrite)
        self.rank, self.world_size = self.processes.rank, self.processes.world_size
        if self.world_size > 1 and not dist.is_initialized():
            raise RuntimeError("several processes but no process group: call ddpm_teach.trainer.init_distributed() first.")
        self.device = device if device is not None else pick_device(config.device)
        self.amp_dtype = amp_dtype_for(config.mixed_precision, self.device)
        self.data = data.to(self.device) if self.device.type == "cuda" else data  # no copy per batch
        self.model_config = derive_model_config(model_config, data, config)
        self.schedule = NoiseSchedule.from_name(config.schedule, config.T)
        torch.manual_seed(config.seed)  # the initial weights: the same on every rank
        # ``network``: another ε-network in our UNet's place, called ``network(x_t, t, labels)``, for a
        # benchmark that trains a peer with exactly our loop (benchmarks/time_to_quality.py); its
        # checkpoints are marked and load_diffusion_model refuses them
        self.network_class = None if network is None else type(network).__qualname__
        self.model = (UNet(self.model_config) if network is None else network).to(self.device)
        torch.manual_seed(config.seed + 7919 * self.rank)  # dropout masks: different on every rank
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = make_ema(self.model, config.ema_decay, config.ema_warmup)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           **optimizer_options(self.device))
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_at(s, config))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 7919 * self.rank)
        self.order = BatchOrder(len(data), config.batch_size, config.seed, self.rank, self.world_size)
        self.step, self.loss_history, self.resume_changes = 0, [], {}
        self.setup_probe: dict | None = None      # --probe-setup's timings and choice (ddpm_teach.setup_probe)
        self.probe_fixed: dict = {}               # setup fields the user decided, which the probe leaves alone
        self.probe_cache = True                   # reuse this machine's earlier probe (setup_probe.cached_probe)
        self._wrap_train_model()

    def _wrap_train_model(self) -> None:
        """``train_model``: the model as the loop calls it (DDP, torch.compile as configured)."""
        self.train_model = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.config.compile:
            self.train_model = torch.compile(self.train_model)

    def probe(self, progress: bool = True) -> dict:
        """``--probe-setup``: time fp32 / bf16 autocast, channels_last and torch.compile on the
        run's first batches and train with the fastest (:func:`probe_and_apply`)."""
        return probe_and_apply(self, progress)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.folder.checkpoint_path

    def claim_out_dir(self) -> contextlib.AbstractContextManager:
        """Check ``out_dir`` and hold its lock (``with trainer.claim_out_dir(): ...``; ``train()``
        does it too): see :meth:`RunFolder.claim`.  Only the main process writes."""
        return self.folder.claim() if self.is_main else contextlib.nullcontext()

    def micro_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This step's ``grad_accum`` micro-batches, ``(x0 [B, C, H, W] in [-1, 1], labels [B])``; with
        ``hflip``, each image mirrored with p = 0.5 by the run's generator (:func:`random_hflip`)."""
        cfg, batches = self.config, []
        for micro in range(cfg.grad_accum):
            x0, labels = self.data.batch(self.order.indices(self.step * cfg.grad_accum + micro), self.device)
            if cfg.hflip:                                   # x_0 ~ q(x_0), or its mirror image
                x0 = random_hflip(x0, self.generator)
            if cfg.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            batches.append((x0, labels))
        return batches

    def run_step(self) -> float:
        """One optimizer step (:func:`~ddpm_teach.training.train_step`), then the LR schedule."""
        cfg = self.config
        try:
            loss = train_step(self.train_model, self.schedule, self.micro_batches(), self.optimizer, self.ema,
                              self.generator, num_classes=self.model_config.num_classes if cfg.conditional else None,
                              label_dropout=cfg.label_dropout, learn_sigma=cfg.learn_sigma, vlb_weight=cfg.vlb_weight,
                              grad_clip=cfg.grad_clip, amp_dtype=self.amp_dtype, scaler=self.scaler,
                              objective=cfg.objective, t_sampling=cfg.t_sampling)
        except NonFiniteLossError as err:
            kept = (f"Nothing was saved over the last good checkpoint ({self.checkpoint_path})"
                    if self.checkpoint_path.exists() else "No checkpoint of this run had been written yet")
            raise NonFiniteLossError(f"{err} at step {self.step}. {kept}. Try a lower --lr, a smaller --grad-clip, "
                                     "or --mixed-precision no, then --resume.") from None
        self.lr_scheduler.step()
        self.step += 1
        self.loss_history.append(loss)
        return loss

    def train(self, steps: int | None = None, *, progress: bool = True,
              callback: Callable[["Trainer", float], None] | None = None) -> list[float]:
        """Algorithm 1 lines 1 and 6: train until ``self.step == steps`` (default ``config.steps``),
        saving every ``checkpoint_every`` steps and at the end.  Returns the loss history.

        With ``config.max_minutes`` the run also stops when the budget is spent, and ``steps``
        becomes an upper bound: :class:`TimeBudget` plans the step it ends at, and ``config.steps``
        is shortened to it so that the cosine finishes with the budget (saved with the checkpoint;
        a resumed run gets a fresh budget).  Ctrl-C or SIGTERM ends the step under way, saves,
        and raises KeyboardInterrupt; a second one stops at once without saving a half-done step."""
        end = self.config.steps if steps is None else steps
        budget = None if self.config.max_minutes is None else TimeBudget(self.config.max_minutes, self.step)
        with self.claim_out_dir(), _interrupts_at_step_end() as signals:
            probe_seconds = 0.0                                            # this sitting's probe
            if self.config.probe_setup and self.setup_probe is None and self.step < end:
                probe_started = _now()
                self.probe(progress)                                       # paid out of the budget
                probe_seconds = _now() - probe_started
            bar = _ProgressBar(self, end, enabled=progress and self.is_main)
            try:
                while self.step < end:                                     # Alg. 1 lines 1 and 6
                    if budget is not None:
                        if _all_ranks_max(self, float(budget.spent())):     # every rank stops at the same step
                            print(f"\nthe {budget.minutes:g}-minute budget is spent: stopping at step {self.step}"
                                  + _budget_spent_early(self, budget, probe_seconds))
                            break
                        end = self._fit_to_budget(budget, end, steps, bar)
                    loss = self.run_step()
                    bar.show(self, end)
                    if callback is not None:
                        callback(self, loss)
                    if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                        self.save()
                    if _all_ranks_max(self, float(signals["count"] > 0)):   # every rank stops at this step
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                _save_on_interrupt(self, forced=signals["count"] > 1)
                raise
            finally:
                bar.close()
            self.save()
        return self.loss_history

    def _fit_to_budget(self, budget: TimeBudget, end: int, steps: int | None, bar: "_ProgressBar") -> int:
        planned = budget.planned_end(self.step)
        if planned is None:
            return end
        planned = int(-_all_ranks_max(self, -float(planned)))            # the earliest over all ranks
        if planned >= end:
            return end
        if steps is None or self.config.steps > planned:
            self.config.steps = planned                                  # the cosine (lr_at) now ends with the budget
        bar.retarget(planned)
        return planned

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self, rng_per_rank: list[dict] | None = None) -> dict:
        return {"kind": "diffusion", "model_config": self.model_config.to_dict(), "schedule": self.schedule.to_config(),
                "train_config": self.config.to_dict(),
                "dataset": {"name": getattr(self.data, "name", str(self.config.dataset)), "classes": list(self.data.classes)},
                **({"autoencoder": self.data.autoencoder} if getattr(self.data, "autoencoder", None) else {}),
                "model": self.model.state_dict(), "ema": self.ema.module.state_dict(),
                "ema_n_averaged": self.ema.n_averaged.cpu(), "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng_per_rank": rng_per_rank or [_rng_state(self.device, self.generator)],
                "step": self.step, "loss_history": list(self.loss_history),
                **({"setup_probe": self.setup_probe} if self.setup_probe else {}),
                **({"network": self.network_class} if self.network_class else {})}

    def save(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the full training state atomically.  Every process must call it (their RNG
        states are gathered so that each rank resumes its own stream); only rank 0 writes."""
        rng_per_rank = _rng_states_of_all_ranks(self)
        if not self.is_main:
            return None
        return self.folder.written(save_checkpoint(self.state_dict(rng_per_rank), path or self.checkpoint_path))

    def load_state_dict(self, ckpt: dict, source: str = "checkpoint") -> None:
        load_state_dict_checked(self.model, ckpt["model"], source)
        load_state_dict_checked(self.ema.module, ckpt["ema"], source + " (EMA)")
        self.ema.n_averaged.copy_(ckpt["ema_n_averaged"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        if self.scaler.is_enabled() and ckpt["scaler"]:       # empty when the run had no fp16 scaler
            self.scaler.load_state_dict(ckpt["scaler"])
        per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]            # "rng": checkpoints written before v0.2
        if len(per_rank) != self.world_size:
            raise CheckpointError(f"{source} was saved by {len(per_rank)} processes but is resumed by {self.world_size}; "
                                  "resume with the same --nproc_per_node for an exact continuation.")
        _set_rng_state(per_rank[self.rank], self.device, self.generator)
        self.step, self.loss_history = int(ckpt["step"]), list(ckpt["loss_history"])
        self.setup_probe = ckpt.get("setup_probe")      # probed once, when the run began
        for group in self.optimizer.param_groups:     # this config's lr and cosine (a resume may change them)
            group["initial_lr"], group["lr"] = self.config.lr, self.config.lr * lr_at(self.step, self.config)
        self.lr_scheduler.base_lrs = [self.config.lr] * len(self.optimizer.param_groups)

    @classmethod
    def resume(cls, path: str | os.PathLike, data, overrides: Mapping | None = None, *,
               device: torch.device | None = None, processes: Processes | None = None,
               folder: RunFolder | None = None, **more) -> "Trainer":
        """Rebuild a run from its checkpoint and continue exactly where it stopped.  ``overrides``
        (and keywords) may change the fields in :data:`RESUMABLE_FIELDS`, e.g. ``steps`` to train
        longer or ``lr`` after a divergence; changing any other field is refused.  What changed is
        in ``trainer.resume_changes`` as ``{field: (old, new)}``."""
        ckpt = load_checkpoint(path, kind="diffusion")
        refuse_other_network(ckpt, path)
        changes = resume_changes(ckpt, {**(overrides or {}), **more}, path)
        config = TrainConfig.from_dict({**ckpt["train_config"], **{k: new for k, (_, new) in changes.items()}})
        trainer = cls(config, UNetConfig.from_dict(ckpt["model_config"]), data, device=device, processes=processes,
                      folder=folder)
        trainer.load_state_dict(ckpt, str(path))
        trainer.folder.written(Path(path))          # resuming in place: its checkpoint is this run's
        trainer.resume_changes = changes
        return trainer


# torch.compile is probed only in a budget that can repay its compile: on the 2-core Xeon the cold
# compile took 79 s for an 8.8% faster step (318 vs 290 img/s, README "How long do I have to train?"),
# repaid after about 15 minutes; on the EPYC-512 it was 10% slower in one run and 4% faster in another.
# The probe runs when a run begins: a resumed run keeps its choice unless --compile/--no-compile is given.
COMPILE_MIN_BUDGET_MINUTES = 15.0


def _budget_spent_early(trainer: "Trainer", budget: TimeBudget, probe_seconds: float) -> str:
    """The why of a budget spent before this sitting's first step ("" otherwise); ``probe_seconds``:
    what this sitting's probe took (0 if it did not probe, or reused a cached result quickly)."""
    if trainer.step > budget.first_step:
        return ""
    cost = f" (the setup probe took {probe_seconds:.0f} s of it)" if probe_seconds >= 1 else ""
    return (f": the budget ran out before the first step{cost}; raise --max-minutes"
            + (" or pass --no-probe-setup" if cost else ""))


def probe_and_apply(trainer: "Trainer", progress: bool = True) -> dict:
    """``--probe-setup`` for ``trainer``: time fp32 / bf16 autocast, channels_last and torch.compile
    on the run's first batches (:func:`ddpm_teach.setup_probe.probe_setup`, on copies of the model,
    so the run itself is unchanged; or this machine's earlier result, :func:`~ddpm_teach.setup_probe.cached_probe`),
    then train with the fastest: the config's ``mixed_precision``, ``channels_last`` and ``compile``
    are set to the choice, and the timings are kept in ``trainer.setup_probe`` (and the checkpoint)."""
    from .setup_probe import cache_key, cached_probe, probe_setup

    cfg = trainer.config
    batches = [trainer.data.batch(trainer.order.indices(k), trainer.device) for k in range(2)]
    emas: dict[int, torch.nn.Module] = {}     # each candidate's copy gets its EMA, as in the real step

    def step_fn(net, optimizer, batch, generator, amp_dtype):
        plain = unwrap_model(net)
        ema = emas.setdefault(id(plain), make_ema(plain, cfg.ema_decay, cfg.ema_warmup))
        train_step(net, trainer.schedule, [batch], optimizer, ema, generator,
                   num_classes=trainer.model_config.num_classes if cfg.conditional else None,
                   label_dropout=cfg.label_dropout, learn_sigma=cfg.learn_sigma, vlb_weight=cfg.vlb_weight,
                   grad_clip=cfg.grad_clip, amp_dtype=amp_dtype, objective=cfg.objective, t_sampling=cfg.t_sampling)

    log = print if progress and trainer.is_main else None
    fixed = dict(trainer.probe_fixed)
    if cfg.max_minutes is not None and cfg.max_minutes < COMPILE_MIN_BUDGET_MINUTES and "compile" not in fixed:
        fixed["compile"] = False           # a short budget cannot repay a compile (COMPILE_MIN_BUDGET_MINUTES)
        if log:
            log(f"setup probe: torch.compile is not tried in a {cfg.max_minutes:.3g}-minute budget: its compile would "
                f"not pay back in it (it is tried from {COMPILE_MIN_BUDGET_MINUTES:g} minutes; --compile forces it)")
    key = cache_key(device=str(trainer.device), network=trainer.network_class or "UNet", model=trainer.model_config.to_dict(),
                    batch=cfg.batch_size, shape=list(batches[0][0].shape[1:]), fixed=fixed,
                    loss=[cfg.objective, cfg.learn_sigma, cfg.conditional], world=trainer.world_size)
    result = cached_probe(key, lambda: probe_setup(trainer.model, batches, step_fn, trainer.device, fixed=fixed,
                                                   log=log), log=log, use_cache=trainer.probe_cache)
    if trainer.world_size > 1:                   # every rank trains the way rank 0 chose
        shared = [result]
        dist.broadcast_object_list(shared, src=0)
        result = shared[0]
    chosen = result["chosen"]
    cfg.mixed_precision, cfg.channels_last, cfg.compile = (chosen["mixed_precision"], chosen["channels_last"],
                                                           chosen["compile"])
    trainer.amp_dtype = amp_dtype_for(cfg.mixed_precision, trainer.device)
    trainer.scaler = torch.amp.GradScaler(trainer.device.type, enabled=trainer.amp_dtype == torch.float16)
    trainer.model = trainer.model.to(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    trainer._wrap_train_model()
    trainer.setup_probe = result
    return result


def resume_changes(ckpt: dict, overrides: Mapping, path) -> dict:
    """What ``overrides`` change in the run of the training checkpoint ``ckpt`` (read from
    ``path``), as ``{field: (old, new)}``; an inference-only checkpoint, or a change that a resume
    may not make, is refused here, so a caller can check before it loads any data."""
    if "optimizer" not in ckpt or ckpt.get("ema") is None:
        raise CheckpointError(f"{str(path)!r} is an inference-only checkpoint (no optimizer state); "
                              "it can be sampled from but not resumed.")
    saved = TrainConfig.from_dict(ckpt["train_config"]).to_dict()
    # a model flag (--block, --base-channels, ...) is compared with the run's model, not with None
    known = {**UNetConfig.from_dict(ckpt["model_config"]).to_dict(), **saved}
    changes = {k: (known.get(k), v) for k, v in overrides.items()
               if known.get(k) != (list(v) if isinstance(v, tuple) else v)}
    _check_resume_changes(changes, int(ckpt["step"]), path)
    return changes


def _check_resume_changes(changes: dict, step: int, path) -> None:
    """Refuse, in one message, what a resume may not change, and a --steps below where it is."""
    fixed = {k: v for k, v in changes.items() if k not in RESUMABLE_FIELDS}
    if fixed:
        said = "; ".join(f"--{k.replace('_', '-')} {new!r} (the run has {old!r})" for k, (old, new) in fixed.items())
        raise ValueError(f"{said}: these are fixed by the run in {path} and cannot change on --resume. Resume "
                         "without them, or start a new run with another --out-dir.")
    if "steps" in changes and changes["steps"][1] < step:
        raise ValueError(f"--steps {changes['steps'][1]} is below step {step}, where the run in {path} already is; "
                         f"give --steps above {step} to train longer, or leave it out to finish the planned "
                         f"{changes['steps'][0]}.")
