"""Fine-tune a cell encoder to tell your cells' states apart (transfer learning on labelled cells).

    cellang classify heart.h5ad --column disease --model cells-binned --minutes 5
    cellang classify heart.h5ad --column disease --model cells-rank --max-steps 300 --out models/heart-rank-disease

The cells are split per state into training, validation and held-out test cells (seeded); the encoder and a
classification head train on the training cells with class weights, stop early when the validation cells' macro-F1
stops improving (or at the budget), and are scored once on the test cells. The model lands in the models folder
(models/<model>-classifier-<column> unless --out says otherwise), where the cell pages list it: embed with it, and
score deletions in it. Its training_record.json holds the states, the split, the settings and the metrics. Bad input
(a file that is not an .h5ad, a missing column, a state with fewer than 3 cells, a folder that exists) ends in exit
code 2 and one line.
"""

from __future__ import annotations

from pathlib import Path

from cellang import cli
from cellang.embedding.classify import DEFAULT_MINUTES, POOLINGS


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("cells", type=Path, metavar="CELLS.h5ad", help="your labelled cells (raw counts best)")
    parser.add_argument("--column", required=True, help="the obs column of the states (cell type, disease, ...)")
    parser.add_argument("--model", default="cells-binned",
                        help="the encoder to fine-tune: cells-binned, cells-rank, my-<folder> or a checkpoint folder")
    parser.add_argument("--minutes", type=cli.number(0, 240, above=True), default=DEFAULT_MINUTES,
                        help=f"training budget (default {DEFAULT_MINUTES:g})")
    parser.add_argument("--max-steps", type=cli.at_least(1), default=None,
                        help="at most this many steps (with --no-budget: a repeatable run)")
    parser.add_argument("--no-budget", action="store_true", help="no time budget: --max-steps or early stopping ends it")
    parser.add_argument("--pooling", choices=(*POOLINGS, "auto"), default="auto",
                        help="the cell state the head reads (auto: the better on the validation cells)")
    parser.add_argument("--out", type=cli.output_dir, default=None, help="the new model's folder (must not exist)")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    from cellang.cells import harmonise_var, validate_cells
    from cellang.cli.adapt import throttled
    from cellang.datasets import read
    from cellang.embedding.classify import fine_tune_classifier
    from cellang.embedding.loading import shown_path

    adata = read(args.cells)
    validate_cells(adata).raise_errors(args.cells.name)
    adata = harmonise_var(adata)[0]

    def show(fraction: float, text: str) -> None:
        print(f"{fraction:4.0%} {text}", flush=True)

    result = fine_tune_classifier(adata, args.column, args.model, minutes=None if args.no_budget else args.minutes,
                                  max_steps=args.max_steps, pooling=args.pooling, out=args.out, seed=args.seed,
                                  device=args.device, data_name=args.cells.name, progress=throttled(show))
    test, about = result.metrics["test"], result.record["classifier"]
    print(f"{result.name}: {shown_path(result.directory)}; {len(result.states)} states of {args.column!r}; "
          f"{result.record['steps']:,} steps (best at {about['best_step']:,}, stopped by {about['stopped_by']})")
    print(f"held-out cells ({test['cells']:,}): macro-F1 {test['macro_f1']:.3f}, accuracy {test['accuracy']:.3f}")
    for state, f1 in test["per_state"].items():
        print(f"  {state}: F1 {f1:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
