"""Adapt a cell encoder to your cells: self-supervised fine-tuning, no labels, within a time budget.

    cellang adapt heart.h5ad --model cells-binned --minutes 5 --out models/heart-binned
    cellang adapt heart.h5ad --model cells-rank --steps 300            # an exact, repeatable run
    cellang adapt heart.h5ad --model cells-rank --minutes 5 --resume   # continue an interrupted run

The model lands in the models folder (models/<model>-adapted-<file stem> unless --out says otherwise), where the
Cell embeddings and In-silico deletion pages list it beside the shipped encoders, and ``embed_cells`` reads it.
Its training_record.json names the file and its sha256, the base model, the budget, the steps taken and the loss
curve; ``--steps N`` with the steps recorded repeats the run to the bit. An output folder that exists is never
overwritten; an interrupted run keeps its state in a hidden folder beside the output until ``--resume`` finishes it.
Bad input (a file that is not an .h5ad, genes that are not human, a base that is not a cell encoder, a budget out
of range) ends in exit code 2 and one line.
"""

from __future__ import annotations

from pathlib import Path

from cellang import cli
from cellang.embedding.adapt import DEFAULT_MINUTES, MAX_MINUTES, adapt_encoder
from cellang.embedding.loading import shown_path


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("cells", nargs="+", type=Path, metavar="CELLS.h5ad", help="your cells (raw counts best)")
    parser.add_argument("--model", default="cells-binned",
                        help="the encoder to adapt: cells-binned, cells-rank, my-<folder> or a checkpoint folder")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=cli.number(0, MAX_MINUTES, above=True), default=DEFAULT_MINUTES,
                        help=f"time budget of the whole run (default {DEFAULT_MINUTES:g})")
    budget.add_argument("--steps", type=cli.at_least(1), default=None, help="an exact number of steps instead")
    parser.add_argument("--out", type=cli.output_dir, default=None, help="the new model's folder (must not exist)")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run of --out")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)

    def show(fraction: float, text: str) -> None:
        print(f"{fraction:4.0%} {text}", flush=True)

    result = adapt_encoder(args.cells, args.model, minutes=args.minutes, steps=args.steps, out=args.out,
                           seed=args.seed, resume=args.resume, device=args.device, progress=throttled(show))
    record = result.record
    val = record.get("final_val_loss")
    print(f"{result.name}: {shown_path(result.directory)}, {record['steps']:,} steps in {result.seconds:.0f} s"
          + (f", validation loss {val:.4f}" if val is not None else "")
          + (" (stopped at the time budget)" if record.get("stopped_at_time_budget") else ""))
    print(f"repeat exactly: cellang adapt {' '.join(map(str, args.cells))} --model {args.model} "
          f"--steps {record['steps']} --seed {args.seed} --out OTHER_FOLDER")
    return 0


def throttled(show, every_s: float = 10.0):  # type: ignore[no-untyped-def]
    """A progress callback that prints at most once every ``every_s`` seconds (and always the first and last)."""
    import time

    last = [-every_s]

    def progress(fraction: float, text: str) -> None:
        now = time.monotonic()
        if fraction in (0.0, 1.0) or now - last[0] >= every_s:
            last[0] = now
            show(fraction, text)

    return progress


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
