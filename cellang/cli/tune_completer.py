"""Tune the shipped completer (retrieval exponents, GPT/retrieval weight, reader or not) on validation pathways.

    cellang tune completer                # reads and writes checkpoints/pathway-gpt
    cellang tune completer --model-dir DIR --reader-dir DIR2

When the retrieval reader (--reader-dir, a folder beside --model-dir) beats the tuned retrieval on the
validation pathways, completer.json names it and the app's ranked completions come from it.

Validation pathways are the GPT's held-out training sets with no near-twin in training; the
benchmark's test split is never used. Writes DIR/completer.json (chosen values, validation scores,
the whole grid and the command) and prints the grid.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cellang import checkpoints, cli
from cellang.completion.completer import COMPLETER_CONFIG, PathwayCompleter
from cellang.completion.rerank import load_reranker
from cellang.completion.tuning import compare_reader, tune
from cellang.corpus import load_corpus
from cellang.paths import CHECKPOINT_DIR
from cellang.training import portable_command_line


def load_model(model_dir: Path) -> tuple[PathwayCompleter, float, int]:
    """(the GPT alone, its validation fraction, its training seed): what the tuning must hold out again.
    A corrupt checkpoint (weights, JSON, config keys) is one error naming the folder."""
    completer = PathwayCompleter.load(model_dir)
    with checkpoints.reading(model_dir):
        record = checkpoints.read_metadata(model_dir)[2]
        return completer, record["val_fraction"], record["train_config"]["seed"]


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt")
    parser.add_argument("--reader-dir", type=Path, default=CHECKPOINT_DIR / "pathway-rerank",
                        help="the retrieval reader to compare (skipped when the folder holds none)")
    parser.add_argument("--mask-ratio", type=cli.fraction, default=0.8, help="share of each pathway hidden")
    args = parser.parse_args(argv)

    completer, val_fraction, seed = load_model(args.model_dir)
    if checkpoints.checkpoint_exists(args.reader_dir) and args.reader_dir.resolve().parent != \
            args.model_dir.resolve().parent:
        raise ValueError(f"--reader-dir {args.reader_dir.name}/ must sit beside --model-dir {args.model_dir.name}/: "
                         f"{COMPLETER_CONFIG} names it by folder name")
    if not os.access(args.model_dir, os.W_OK):  # checked now: the grid takes minutes
        raise ValueError(f"cannot write {COMPLETER_CONFIG} into {args.model_dir.name}/: the folder is read-only")
    corpus = load_corpus()
    chosen, grid = tune(corpus, completer, val_fraction, seed, args.mask_ratio)
    print(grid.to_markdown(index=False))
    reader_choice = {}
    if checkpoints.checkpoint_exists(args.reader_dir):
        reader, _ = load_reranker(args.reader_dir)
        comparison = compare_reader(corpus, reader, completer.vocabulary.genes, val_fraction, seed, chosen["alpha"],
                                    chosen["power"], args.mask_ratio)
        print(f"validation: reader {comparison['reader']}; retrieval {comparison['retrieval']}; "
              f"chosen: {comparison['chosen']}")
        reader_choice = {"reader_validation": comparison}
        if comparison["chosen"] == "reader":
            reader_choice["reader"] = args.reader_dir.resolve().name
    config = {**chosen, **reader_choice, "mask_ratio": args.mask_ratio,
              "command": portable_command_line(sys.argv if argv is None else ["cellang", "tune", "completer", *argv]),
              "grid": grid.to_dict(orient="records")}
    (args.model_dir / COMPLETER_CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    print(f"chosen: alpha {chosen['alpha']}, power {chosen['power']}, weight {chosen['weight']}; "
          f"validation {chosen['validation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
