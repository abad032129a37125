"""Tune the shipped completer (retrieval exponents, GPT/retrieval weight, reader or not) on validation pathways.

    cellang tune completer                # reads and writes checkpoints/pathway-gpt
    cellang tune completer --model-dir DIR --reader-dir DIR2

When the retrieval reader (--reader-dir, a folder beside --model-dir) beats the tuned retrieval on the
validation pathways, completer.json names it and the app's ranked completions come from it. The
masked-set transformer (--set-model-dir, beside too) then gets the share of the ranking that does best
on the validation pathways and on the novel part of each outside-style validation file (--outside;
default: the validation-*.gmt.gz files `cellang build external` wrote, when there are any). Last, a stacker
that weighs the two models per gene (cellang/completion/stacking.py) is fitted on halves of those sources and
scored on the other halves; completer.json keeps it, fitted on every set, only when it beats the mixture there.

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
from cellang.completion import benchmark as bench
from cellang.completion.completer import COMPLETER_CONFIG, PathwayCompleter
from cellang.completion.mixing import choose_stacker
from cellang.completion.rerank import load_reranker
from cellang.completion.set_model import SetModelCompleter
from cellang.completion.tuning import choose_set_model_share, compare_reader, tune, validation_sources
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


def built_validation_files() -> list[Path]:
    """The outside-style validation files `cellang build external` has written (none when it has not run)."""
    from cellang.corpus.external import VALIDATION_FILES, external_path

    return sorted(path for path in (external_path(f.name) for f in VALIDATION_FILES) if path.is_file())


def set_model_choice(args, corpus, reader, universe, val_fraction: float, seed: int,  # type: ignore[no-untyped-def]
                     outside: list[Path]) -> dict:
    """completer.json's "set_model", "set_model_share", "set_model_single_gene_share" and "set_model_validation"
    (the grid and the files)."""
    from cellang.genes import load_resolver

    set_model = SetModelCompleter.load(args.set_model_dir)
    sources = validation_sources(corpus, universe, outside, load_resolver(), val_fraction, args.mask_ratio, seed)
    choice = choose_set_model_share(sources, reader, set_model, universe)
    print(f"set model share: {choice['share']:g}, reading each prompt gene alone at {choice['single_gene_share']:g} "
          f"(mean share of pathways significant per source: {choice['mean_fraction_significant_by_single_gene_share']})")
    stacking = {}
    if choice["share"] > 0:
        stacking = choose_stacker(sources, reader, set_model, universe, (choice["single_gene_share"], choice["share"]),
                                  seed)
        print(f"stacker against the mixture on held-out halves: {stacking['stacker_validation']['chosen']} "
              f"({stacking['stacker_validation']['mean_fraction_significant']})")
    return {"set_model": args.set_model_dir.resolve().name, "set_model_share": choice["share"],
            "set_model_single_gene_share": choice["single_gene_share"],
            "set_model_validation": {"sources": [s.name for s in sources], **choice}, **stacking}


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-gpt")
    parser.add_argument("--reader-dir", type=Path, default=CHECKPOINT_DIR / "pathway-rerank",
                        help="the retrieval reader to compare (skipped when the folder holds none)")
    parser.add_argument("--set-model-dir", type=Path, default=CHECKPOINT_DIR / "pathway-set",
                        help="the masked-set transformer to mix with the reader (skipped when the folder holds none)")
    parser.add_argument("--outside", type=Path, nargs="*", default=None, metavar="GMT",
                        help="outside-style validation files for the set model's share (default: "
                             "data/external/validation-*.gmt.gz)")
    parser.add_argument("--mask-ratio", type=cli.fraction, default=0.8, help="share of each pathway hidden")
    args = parser.parse_args(argv)
    outside = built_validation_files() if args.outside is None else args.outside
    for path in outside:
        bench.read_external(path)  # a missing or unreadable file fails now, not after the grid

    completer, val_fraction, seed = load_model(args.model_dir)
    for option, folder in (("--reader-dir", args.reader_dir), ("--set-model-dir", args.set_model_dir)):
        if checkpoints.checkpoint_exists(folder) and folder.resolve().parent != args.model_dir.resolve().parent:
            raise ValueError(f"{option} {folder.name}/ must sit beside --model-dir {args.model_dir.name}/: "
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
            if checkpoints.checkpoint_exists(args.set_model_dir):
                reader_choice.update(set_model_choice(args, corpus, reader, completer.vocabulary.genes, val_fraction,
                                                      seed, outside))
    config = {**chosen, **reader_choice, "mask_ratio": args.mask_ratio,
              "command": portable_command_line(sys.argv if argv is None else ["cellang", "tune", "completer", *argv]),
              "grid": grid.to_dict(orient="records")}
    (args.model_dir / COMPLETER_CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    print(f"chosen: alpha {chosen['alpha']}, power {chosen['power']}, weight {chosen['weight']}; "
          f"validation {chosen['validation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
