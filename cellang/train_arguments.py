"""The command-line face of :class:`~cellang.training.TrainConfig`, shared by every sub-command of
``cellang train``: the training arguments (defaults from the model's own schedule), the config they
fill, the output folders made before any work, and the one-line summary of a finished run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellang import cli
from cellang.training import TrainConfig


def make_folders(args: argparse.Namespace) -> None:
    """--out and --run-dir, made once the inputs are known good and before training (not at the first
    checkpoint or the export), so a path inside a file fails before any work."""
    for folder in (args.out, args.run_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)


def add_training_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """Arguments every model's trainer shares (they fill TrainConfig); defaults: the model's schedule."""
    group = parser.add_argument_group("training")
    group.add_argument("--batch-size", type=cli.at_least(1), default=defaults.batch_size,
                       help="sequences per micro-batch")
    group.add_argument("--grad-accum", type=cli.at_least(1), default=defaults.grad_accum_steps,
                       help="micro-batches per optimizer step")
    group.add_argument("--lr", type=cli.number(0, above=True), default=defaults.lr, help="peak learning rate")
    group.add_argument("--min-lr", type=cli.number(0), default=None, help="final learning rate (default lr/10)")
    group.add_argument("--weight-decay", type=cli.number(0), default=defaults.weight_decay)
    group.add_argument("--max-steps", type=cli.at_least(1), default=defaults.max_steps, help="optimizer steps")
    group.add_argument("--warmup", type=cli.at_least(0), default=defaults.warmup_steps, help="linear warm-up steps")
    group.add_argument("--eval-interval", type=cli.at_least(1), default=defaults.eval_interval,
                       help="steps between validations")
    group.add_argument("--eval-batches", type=cli.at_least(0), default=defaults.eval_batches,
                       help="validation batches (0 = all)")
    group.add_argument("--checkpoint-interval", type=cli.at_least(1), default=defaults.checkpoint_interval,
                       help="steps between checkpoints")
    group.add_argument("--seed", type=cli.seed, default=defaults.seed)
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device)
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint in --run-dir")


# TrainConfig field -> the argparse destination of its flag (min_lr is derived when not given).
CONFIG_FIELDS = {"max_steps": "max_steps", "batch_size": "batch_size", "grad_accum_steps": "grad_accum", "lr": "lr",
                 "warmup_steps": "warmup", "weight_decay": "weight_decay", "eval_interval": "eval_interval",
                 "eval_batches": "eval_batches", "checkpoint_interval": "checkpoint_interval", "seed": "seed",
                 "device": "device", "compile": "compile"}


def train_config_from(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the training arguments describe; --min-lr defaults to a tenth of --lr."""
    min_lr = args.min_lr if args.min_lr is not None else args.lr / 10
    return TrainConfig(min_lr=min_lr, **{field: getattr(args, name) for field, name in CONFIG_FIELDS.items()})


def report(record: dict, out: Path) -> int:
    """Print a finished run's one-line summary; the exit status."""
    losses = ", ".join(
        f"{name} loss {record[key]:.4f}" for name, key in (("train", "final_train_loss"), ("val", "final_val_loss"))
        if record[key] is not None
    )
    print(f"{record['steps']} steps, {losses}, {record['wall_time_s']:.0f} s on {record['device']}; "
          f"model written to {out}")
    return 0
