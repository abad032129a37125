"""The one training loop for every model in the project.

The trainer knows nothing about genes or cells. It needs:
  * a model whose forward(*batch) returns (output, loss);
  * a resumable batch source: `train_batches(position)` yields batches (tuples of tensors whose
    first dimension is the row, e.g. (inputs, targets)) starting at micro-batch number `position`,
    and must give the same batches for the same position; under torchrun each rank takes its slice
    of every batch, unless the source has ``partitioned = True`` (it already serves this rank's rows);
  * optionally a validation source: `val_batches()` yields batches of the same form;
  * a save function that writes a checkpoint (normally a closure over checkpoints.save_checkpoint
    that adds the model config and vocabulary).

It does AdamW with warm-up + cosine decay, gradient accumulation, bf16 autocast on CUDA, gradient
clipping, periodic validation, atomic checkpoints with exact resume, and DistributedDataParallel
when launched by torchrun (each rank trains on a disjoint slice of every batch).

A time budget (``time_budget_s``) instead of a step count: the warm-up steps are timed, and the run's
length is fixed from their pace before the cosine decay starts. The warm-up's learning rates do not
depend on the run's length, so the result equals a run given that many steps from the start (the
number is saved, recorded and reused on resume); a run that still overruns stops at the budget.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from cellang import checkpoints
from cellang.device import autocast_context, describe_device, pick_device, seed_everything
from cellang.paths import REPO_ROOT

Batch = tuple[torch.Tensor, ...]
BatchSource = Callable[[int], Iterator[Batch]]
ValidationSource = Callable[[], Iterable[Batch]]
# save_fn(directory, bare_model, record, training_state) writes one checkpoint directory.
SaveFn = Callable[[Path, nn.Module, dict[str, Any], dict[str, Any]], None]
# on_step(steps done, steps planned, seconds so far): called after every optimizer step (e.g. a progress bar)
StepCallback = Callable[[int, int, float], object]


@dataclass
class TrainConfig:
    max_steps: int = 2000
    batch_size: int = 32  # rows per micro-batch, all ranks together (read by batch builders)
    grad_accum_steps: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    eval_interval: int = 100
    eval_batches: int = 20  # validation batches per evaluation; 0 = all of them
    checkpoint_interval: int = 500
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    # > 0: max_steps becomes an upper bound and the run is sized to this many seconds (module docstring);
    # needs warmup_steps >= 2 (the pace is measured over the warm-up)
    time_budget_s: float = 0.0


BUDGET_RESERVE = 0.1  # share of a time budget kept for validation and checkpoints, which the pace leaves out


class HistoryEntry(NamedTuple):
    step: int  # optimizer steps completed
    train_loss: float  # mean training loss since the previous entry
    val_loss: float | None  # None when there is no validation source
    lr: float  # learning rate of the last step


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to config.lr over warmup_steps, then cosine decay to min_lr at max_steps."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / (config.warmup_steps + 1)
    decay_steps = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def portable_command_line(argv: Sequence[str], root: Path = REPO_ROOT) -> str:
    """The command line with paths made relative to the repository (no machine-specific paths): ``cellang ...``
    for the command line (cellang.cli.main sets argv[0] to "cellang"), else ``python <script> ...``.

    Absolute paths outside the repository keep only their file name, as `<external>/name`.
    """

    def portable(value: str) -> str:
        if not os.path.isabs(value):
            return value
        path = Path(value).resolve()
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            return f"<external>/{path.name}"

    words = []
    for arg in argv:
        option, equals, value = arg.partition("=")
        words.append(f"{option}={portable(value)}" if equals and option.startswith("-") else portable(arg))
    launcher = [] if argv and Path(argv[0]).name == "cellang" else ["python"]  # `cellang train ...` as typed
    return shlex.join([*launcher, *words])


def resuming(resume: bool, run_dir: str | Path | None) -> bool:
    """Whether a run continues from a checkpoint: resume was asked for and run_dir holds one (a run
    asked to resume without one starts fresh)."""
    return resume and run_dir is not None and checkpoints.checkpoint_exists(run_dir)


def distributed_env() -> tuple[int, int, int]:
    """(world_size, rank, local_rank) as set by torchrun; (1, 0, 0) for a plain launch."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return world_size, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """Trains one model; see the module docstring for what it expects."""

    def __init__(
        self,
        model: nn.Module,
        train_batches: BatchSource,
        val_batches: ValidationSource | None,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        save_fn: SaveFn | None = None,
        on_step: StepCallback | None = None,
    ) -> None:
        """out_dir: the run directory; a resumable checkpoint is kept there (written by save_fn)
        every checkpoint_interval steps and at the end. None trains without checkpoints.
        on_step: see StepCallback (main process only)."""
        if out_dir is not None and save_fn is None:
            raise ValueError("a save_fn is needed to write checkpoints into out_dir")
        if config.max_steps < 1 or config.grad_accum_steps < 1:
            raise ValueError("max_steps and grad_accum_steps must be >= 1")
        if config.time_budget_s < 0 or (config.time_budget_s > 0 and config.warmup_steps < 2):
            raise ValueError("a time budget must be positive and needs warmup_steps >= 2 to measure the pace")
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.save_fn = save_fn
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.on_step = on_step

        self.world_size, self.rank, local_rank = distributed_env()
        if config.batch_size < self.world_size:
            raise ValueError(f"batch_size {config.batch_size} cannot be split over {self.world_size} ranks")
        self.is_main = self.rank == 0
        self.device = pick_device(config.device, local_rank=local_rank)
        self._owns_process_group = False
        if self.world_size > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            self._owns_process_group = True

        self.model = model.to(self.device)  # the bare module: what gets saved and evaluated
        self.optimizer = self._make_optimizer()
        self.history: list[HistoryEntry] = []
        self.record: dict[str, Any] = {}
        self.step = 0
        self.steps_sized = False  # a time-budgeted run's length is fixed (see the module docstring)
        self.stopped_at_budget = False

    def _make_optimizer(self) -> torch.optim.AdamW:
        # Decay matrices and embeddings; leave biases and LayerNorm gains alone.
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": self.config.weight_decay},
            {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            groups,
            lr=self.config.lr,
            betas=self.config.betas,
            fused=self.device.type == "cuda",
        )

    def _shard(self, batch: Batch, split: bool = True) -> Batch:
        """This rank's disjoint slice of the rows of every tensor in a batch (the batch itself when the source
        already partitions its rows across ranks: split=False), moved to the device."""
        if split and self.world_size > 1:
            batch = tuple(t.tensor_split(self.world_size)[self.rank] for t in batch)
        return tuple(t.to(self.device, non_blocking=True) for t in batch)

    def _mean_across_ranks(self, total: torch.Tensor, count: torch.Tensor) -> float:
        if self.world_size > 1:
            both = torch.stack([total.float(), count.float()])
            dist.all_reduce(both)
            total, count = both[0], both[1]
        return (total / count).item() if count.item() > 0 else float("nan")

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean validation loss over up to eval_batches batches (None without a source)."""
        if self.val_batches is None:
            return None
        was_training = self.model.training
        self.model.eval()
        total = torch.zeros((), device=self.device)
        count = torch.zeros((), device=self.device)
        for index, batch in enumerate(self.val_batches()):
            if 0 < self.config.eval_batches <= index:
                break
            batch = self._shard(batch)
            if len(batch[0]) == 0:
                continue
            with autocast_context(self.device):
                _, loss = self.model(*batch)
            total += loss.float()
            count += 1
        self.model.train(was_training)
        return self._mean_across_ranks(total, count)

    def _training_state(self, loss_sum: torch.Tensor, loss_count: int, wall_time: float) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": self.step,
            "micro_batches_consumed": self.step * self.config.grad_accum_steps,
            "optimizer": self.optimizer.state_dict(),
            "history": [list(entry) for entry in self.history],
            "loss_sum": loss_sum.detach().cpu(),
            "loss_count": loss_count,
            "wall_time_s": wall_time,
            "torch_rng": torch.get_rng_state(),
            "max_steps": self.config.max_steps,
            "steps_sized": self.steps_sized,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self) -> tuple[torch.Tensor, int, float]:
        """Load model, optimizer, position, RNG and history from out_dir's checkpoint."""
        assert self.out_dir is not None
        state = checkpoints.load_training_state(self.out_dir)
        if state is None:
            raise FileNotFoundError(f"checkpoint in {self.out_dir} has no training state to resume")
        checkpoints.load_weights(self.out_dir, self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        if self.config.time_budget_s > 0 and state.get("steps_sized"):
            self.config = dataclasses.replace(self.config, max_steps=int(state["max_steps"]))
            self.steps_sized = True
        self.history = [HistoryEntry(*entry) for entry in state["history"]]
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return state["loss_sum"].to(self.device), int(state["loss_count"]), float(state["wall_time_s"])

    def _make_record(self, wall_time: float) -> dict[str, Any]:
        def finite(value: float | None) -> float | None:
            # JSON has no NaN; a missing loss is recorded as null.
            return value if value is not None and math.isfinite(value) else None

        last = self.history[-1] if self.history else None
        return {
            "steps": self.step,
            "final_train_loss": finite(last.train_loss) if last else None,
            "final_val_loss": finite(last.val_loss) if last else None,
            "wall_time_s": round(wall_time, 3),
            "device": describe_device(self.device),
            "world_size": self.world_size,
            "seed": self.config.seed,
            "train_config": dataclasses.asdict(self.config),
            **({"stopped_at_time_budget": self.stopped_at_budget} if self.config.time_budget_s > 0 else {}),
            "history": [
                {**entry._asdict(), "train_loss": finite(entry.train_loss), "val_loss": finite(entry.val_loss)}
                for entry in self.history
            ],
        }

    def _size_to_budget(self, pace_from: tuple[int, float] | None, elapsed: float) -> tuple[int, float] | None:
        """After each step of a time-budgeted run: at the end of the warm-up, fix max_steps from the pace of the
        warm-up steps after the first (which also pays for loading); past the budget, stop after this step."""
        config = self.config
        if elapsed >= config.time_budget_s and self.step < config.max_steps:
            self.config = dataclasses.replace(config, max_steps=self.step)
            self.stopped_at_budget = self.steps_sized = True
        elif not self.steps_sized and pace_from is None:
            pace_from = (self.step, elapsed)
        elif not self.steps_sized and self.step >= config.warmup_steps:
            pace = (elapsed - pace_from[1]) / max(1, self.step - pace_from[0])
            affordable = int((config.time_budget_s * (1 - BUDGET_RESERVE) - elapsed) / max(pace, 1e-9))
            self.config = dataclasses.replace(config, max_steps=max(self.step, min(config.max_steps,
                                                                                  self.step + affordable)))
            self.steps_sized = True
        if self.world_size > 1:  # every rank must stop at the same step: the most cautious one decides
            agreed = torch.tensor([self.config.max_steps], device=self.device)
            dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
            self.config = dataclasses.replace(self.config, max_steps=int(agreed.item()))
        return pace_from

    def _save(self, loss_sum: torch.Tensor, loss_count: int, wall_time: float) -> None:
        self.record = self._make_record(wall_time)
        if self.out_dir is None or not self.is_main:
            return
        assert self.save_fn is not None
        self.save_fn(self.out_dir, self.model, self.record, self._training_state(loss_sum, loss_count, wall_time))

    def fit(self, resume: bool = False) -> list[HistoryEntry]:
        """Train up to config.max_steps optimizer steps; returns the history.

        resume: continue from the checkpoint in out_dir when there is one (otherwise start
        fresh). Resuming gives the same weights as a run that was never interrupted.
        """
        seed_everything(self.config.seed)
        loss_sum = torch.zeros((), device=self.device)
        loss_count, wall_before = 0, 0.0
        if resuming(resume, self.out_dir):
            loss_sum, loss_count, wall_before = self._restore()
            if self.is_main:
                tqdm.write(f"resuming from step {self.step} in {self.out_dir}")
        config = self.config
        started = time.perf_counter()
        pace_from: tuple[int, float] | None = None  # (step, time) where the pace measurement starts

        model: nn.Module = self.model
        if config.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=device_ids)

        batches = self.train_batches(self.step * config.grad_accum_steps)
        split = not getattr(self.train_batches, "partitioned", False)
        progress = tqdm(
            total=config.max_steps,
            initial=self.step,
            desc="train",
            disable=not self.is_main or not sys.stderr.isatty(),
        )
        model.train()
        try:
            while self.step < config.max_steps:
                lr = learning_rate(self.step, config)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                for micro in range(config.grad_accum_steps):
                    batch = self._shard(next(batches), split)
                    if self.world_size > 1:
                        # Only all-reduce gradients on the last micro-batch of the step.
                        model.require_backward_grad_sync = micro == config.grad_accum_steps - 1
                    with autocast_context(self.device):
                        _, loss = model(*batch)
                    (loss / config.grad_accum_steps).backward()
                    loss_sum += loss.detach().float() / config.grad_accum_steps
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                loss_count += 1
                progress.update(1)
                if config.time_budget_s > 0:
                    pace_from = self._size_to_budget(pace_from, wall_before + time.perf_counter() - started)
                    config = self.config
                    progress.total = config.max_steps
                if self.on_step is not None and self.is_main:
                    self.on_step(self.step, config.max_steps, wall_before + time.perf_counter() - started)

                last = self.step == config.max_steps
                if self.step % config.eval_interval == 0 or last:
                    count = torch.tensor(float(loss_count), device=self.device)
                    train_loss = self._mean_across_ranks(loss_sum, count)
                    entry = HistoryEntry(self.step, train_loss, self.evaluate(), lr)
                    self.history.append(entry)
                    loss_sum, loss_count = torch.zeros((), device=self.device), 0
                    if self.is_main:
                        val = "-" if entry.val_loss is None else f"{entry.val_loss:.4f}"
                        progress.set_postfix(train=f"{train_loss:.4f}", val=val)
                        if progress.disable:  # no live bar (e.g. a log file): print a line instead
                            tqdm.write(f"step {self.step}: train {train_loss:.4f} val {val} lr {lr:.2e}")
                if self.step % config.checkpoint_interval == 0 or last:
                    self._save(loss_sum, loss_count, wall_before + time.perf_counter() - started)
        finally:
            progress.close()
            if self._owns_process_group:
                dist.destroy_process_group()
        self.record = self._make_record(wall_before + time.perf_counter() - started)
        return self.history


def fit_and_export(model: nn.Module, train_batches: Callable[[int], Iterator[Any]], val_batcher: Any,
                   config: TrainConfig, *, static_record: dict[str, Any], vocabulary_json: Any,
                   run_dir: str | Path | None, export_dir: str | Path | None,
                   resume: bool, on_step: StepCallback | None = None) -> tuple[list[HistoryEntry], dict[str, Any]]:
    """Train `model` with one Trainer and write its checkpoints; what every train_* function shares.

    Checkpoints (weights, `model.config_dict()`, vocabulary_json, static_record + the trainer's record)
    go to run_dir every checkpoint interval (None: none) and, when the run ends, to export_dir (None:
    not exported). resume continues from run_dir's checkpoint when there is one, and refuses one saved
    with another model config or vocabulary. on_step: see StepCallback. Validation uses epoch 0 of val_batcher, so every
    evaluation sees the same batches. Returns (history, static_record + the trainer's record).
    """
    if resuming(resume, run_dir):
        assert run_dir is not None
        saved_config, saved_vocabulary, _ = checkpoints.read_metadata(run_dir)
        if saved_config != model.config_dict():
            raise ValueError(f"cannot resume {run_dir}: model config {saved_config} != {model.config_dict()}")
        if saved_vocabulary != vocabulary_json:
            raise ValueError(f"cannot resume {run_dir}: its vocabulary differs from this run's")

    def save(directory: Path, bare: nn.Module, record: dict[str, Any], state: dict[str, Any] | None) -> None:
        checkpoints.save_checkpoint(directory, bare, config=model.config_dict(), vocabulary_json=vocabulary_json,
                                    record={**static_record, **record}, training_state=state)

    trainer = Trainer(model, train_batches, lambda: val_batcher.epoch_batches(0), config,
                      out_dir=run_dir, save_fn=save if run_dir is not None else None, on_step=on_step)
    history = trainer.fit(resume=resume)
    if export_dir is not None and trainer.is_main:
        save(Path(export_dir), model, trainer.record, None)
    return history, {**static_record, **trainer.record}
