"""Train the project's models; one sub-command per model.

    cellang train pathway                       # pathway GPT on the built corpus
    cellang train pathway --max-steps 200 --device cpu
    cellang train pathway --resume              # continue runs/pathway-gpt
    torchrun --nproc_per_node 4 scripts/train.py pathway  # DistributedDataParallel
    cellang train pathway-dae                   # gene-set denoising autoencoder baseline
    cellang train pathway-set                   # masked-set transformer (one softmax per set)
    cellang train pathway-set --average-of A B  # the mean of trained runs' weights (a model soup)
    cellang train pathway-rerank                # the reader of what set retrieval finds
    cellang train cells-binned                  # scGPT-style cell encoder on the atlas
    cellang train cells-rank --init-from-pathway  # Geneformer-style, pathway gene embeddings

Each run keeps a resumable checkpoint in --run-dir and writes the finished model (safetensors +
config + vocabulary + training record, no optimizer state) to --out.

To add a model (e.g. `cells-binned`, `cells-rank`): write `add_<name>_arguments(parser)` and
`run_<name>(args) -> int`, and register both in COMMANDS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Imported up front because every sub-command's argument defaults come from these modules.
from cellang import census, checkpoints, cli
from cellang.completion import dae_training, rerank_training, set_training
from cellang.completion import training as pathway_training
from cellang.device import pick_device
from cellang.embedding import training as cell_training
from cellang.models.dae import DAEConfig
from cellang.models.encoder import RANK_POSITIONS, EncoderConfig
from cellang.models.gpt import OBJECTIVES, GPTConfig
from cellang.models.reranker import RerankerConfig
from cellang.models.set_transformer import SetTransformerConfig
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT, user_model_dir
from cellang.tokenizers import binned, rank
from cellang.tokenizers.pathway import PathwayVocabulary
from cellang.train_arguments import add_training_arguments, make_folders, report, train_config_from
from cellang.training import portable_command_line, resuming


# --- pathway ------------------------------------------------------------------------------------


def corpus_splits(directory: Path | None) -> tuple[Any, list[list[str]], list[list[str]], list[str]]:
    """(corpus, train gene sets, test gene sets, the pathway models' genes) of the built corpus
    (default: data/corpus)."""
    from cellang.corpus import load_corpus, vocabulary_genes

    corpus = load_corpus(directory) if directory is not None else load_corpus()
    return (corpus, [p.genes for p in corpus.pathways if p.split == "train"],
            [p.genes for p in corpus.pathways if p.split == "test"], vocabulary_genes(corpus.pathways))


def add_corpus_arguments(parser: argparse.ArgumentParser, name: str, *, run_dir: Path | None,
                         val_fraction: float | None) -> None:
    """--corpus, --out (default checkpoints/NAME), --run-dir and, when the model holds sets out,
    --val-fraction: the arguments every pathway model shares."""
    parser.add_argument("--corpus", type=Path, default=None, help="built corpus directory (default data/corpus)")
    parser.add_argument("--out", type=cli.output_dir, default=CHECKPOINT_DIR / name, help="finished model")
    parser.add_argument("--run-dir", type=cli.output_dir, default=run_dir,
                        help="resumable checkpoints (not shipped)" + ("" if run_dir else "; default: none"))
    if val_fraction is not None:
        parser.add_argument("--val-fraction", type=cli.fraction, default=val_fraction,
                            help="train sets held out for validation")


def corpus_record(corpus: Any, test: list[list[str]]) -> dict:
    """What a pathway model's training record says about its data and command."""
    return {"corpus_manifest_sha256": corpus.manifest_sha256, "command_line": portable_command_line(sys.argv),
            "n_test_sets_unused": len(test)}


def add_pathway_arguments(parser: argparse.ArgumentParser) -> None:
    name = pathway_training.MODEL_NAME
    add_corpus_arguments(parser, name, run_dir=REPO_ROOT / "runs" / name, val_fraction=pathway_training.VAL_FRACTION)
    model = parser.add_argument_group("model")
    model.add_argument("--n-layer", type=cli.at_least(1), default=GPTConfig.n_layer)
    model.add_argument("--n-head", type=cli.at_least(1), default=GPTConfig.n_head)
    model.add_argument("--n-embd", type=cli.at_least(1), default=GPTConfig.n_embd)
    model.add_argument("--block-size", type=cli.at_least(2), default=GPTConfig.block_size,
                       help="max input tokens (genes + <bos>)")
    model.add_argument("--dropout", type=cli.number(0, 1), default=GPTConfig.dropout)
    model.add_argument("--objective", choices=OBJECTIVES, default=GPTConfig.objective,
                       help="set: predict every unseen member at each position; next_token: plain LM")
    model.add_argument("--window", type=cli.at_least(1), default=pathway_training.WINDOW,
                       help="set objective: genes fed per pathway")
    model.add_argument("--positions-per-set", type=cli.at_least(1), default=pathway_training.POSITIONS_PER_SET,
                       help="set objective: positions scored")
    add_training_arguments(parser, pathway_training.TRAINING)


def run_pathway(args: argparse.Namespace) -> int:
    pick_device(args.device)  # fail fast on --device cuda without a GPU
    corpus, train, test, genes = corpus_splits(args.corpus)
    vocabulary = PathwayVocabulary(genes)
    model_config = GPTConfig(vocab_size=len(vocabulary), block_size=args.block_size, n_layer=args.n_layer,
                             n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, objective=args.objective)
    make_folders(args)
    result = pathway_training.train_pathway_model(
        train,
        vocabulary,
        model_config=model_config,
        train_config=train_config_from(args),
        run_dir=args.run_dir,
        export_dir=args.out,
        val_fraction=args.val_fraction,
        resume=args.resume,
        window=args.window,
        positions_per_set=args.positions_per_set,
        record_extra=corpus_record(corpus, test),
    )
    return report(result.record, args.out)


# --- pathway-dae --------------------------------------------------------------------------------


def add_pathway_dae_arguments(parser: argparse.ArgumentParser) -> None:
    add_corpus_arguments(parser, dae_training.MODEL_NAME, run_dir=None, val_fraction=dae_training.VAL_FRACTION)
    model = parser.add_argument_group("model")
    model.add_argument("--hidden", type=cli.at_least(1), default=DAEConfig.hidden,
                       help="width of the outer hidden layers")
    model.add_argument("--latent", type=cli.at_least(1), default=DAEConfig.latent, help="width of the bottleneck")
    model.add_argument("--dropout", type=cli.number(0, 1), default=DAEConfig.dropout)
    low, high = dae_training.MASK_RATIO_RANGE
    model.add_argument("--mask-min", type=cli.fraction, default=low, help="smallest fraction of a set hidden")
    model.add_argument("--mask-max", type=cli.fraction, default=high, help="largest fraction of a set hidden")
    add_training_arguments(parser, dae_training.TRAINING)


def run_pathway_dae(args: argparse.Namespace) -> int:
    if args.resume and args.run_dir is None:
        raise ValueError("--resume needs --run-dir")
    if args.mask_min > args.mask_max:
        raise ValueError(f"--mask-min ({args.mask_min}) must not exceed --mask-max ({args.mask_max})")
    pick_device(args.device)  # fail fast on --device cuda without a GPU
    corpus, train, test, genes = corpus_splits(args.corpus)
    make_folders(args)
    _, record = dae_training.train_dae(
        train,
        genes,
        config=DAEConfig(n_genes=len(genes), hidden=args.hidden, latent=args.latent, dropout=args.dropout),
        train_config=train_config_from(args),
        export_dir=args.out,
        val_fraction=args.val_fraction,
        run_dir=args.run_dir,
        resume=args.resume,
        mask_ratio_range=(args.mask_min, args.mask_max),
        record_extra=corpus_record(corpus, test),
    )
    return report(record, args.out)


# --- pathway-set ----------------------------------------------------------------------------------


def add_pathway_set_arguments(parser: argparse.ArgumentParser) -> None:
    name = set_training.MODEL_NAME
    add_corpus_arguments(parser, name, run_dir=REPO_ROOT / "runs" / name, val_fraction=set_training.VAL_FRACTION)
    model = parser.add_argument_group("model")
    model.add_argument("--n-layer", type=cli.at_least(1), default=SetTransformerConfig.n_layer)
    model.add_argument("--n-head", type=cli.at_least(1), default=SetTransformerConfig.n_head)
    model.add_argument("--n-embd", type=cli.at_least(1), default=SetTransformerConfig.n_embd)
    model.add_argument("--max-prompt", type=cli.at_least(1), default=SetTransformerConfig.max_prompt,
                       help="most prompt genes read")
    model.add_argument("--dropout", type=cli.number(0, 1), default=SetTransformerConfig.dropout)
    parser.add_argument("--cooccurrence-weight", type=cli.number(0), default=0.0, metavar="W",
                        help="also learn co-occurrence's scores for each prompt, this weight beside the held-out "
                             "members (the shipped model: 3, in two runs from the plain one; see its README)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="start from this trained pathway-set checkpoint (same sizes and genes)")
    parser.add_argument("--average-of", type=Path, nargs="+", default=None, metavar="CHECKPOINT",
                        help="train nothing: write the uniform average of these trained pathway-set checkpoints' "
                             "weights (same sizes and genes; runs continued from one checkpoint) to --out")
    add_training_arguments(parser, set_training.TRAINING)


def run_pathway_set(args: argparse.Namespace) -> int:
    pick_device(args.device)  # fail fast on --device cuda without a GPU
    if args.average_of is not None and (args.init_from is not None or len(args.average_of) < 2):
        raise ValueError("--average-of needs two or more checkpoints and no --init-from (it trains nothing)")
    for directory in [args.init_from] if args.init_from is not None else args.average_of or []:
        set_training.check_initial_checkpoint(directory)
    corpus, train, test, genes = corpus_splits(args.corpus)
    if args.average_of is not None:
        make_folders(args)
        _, record = set_training.average_set_models(args.average_of, train, genes, export_dir=args.out,
                                                    val_fraction=args.val_fraction, seed=args.seed,
                                                    record_extra=corpus_record(corpus, test))
        print(f"average of {len(args.average_of)} checkpoints, validation loss {record['final_val_loss']:.4f}; "
              f"model written to {args.out}")
        return 0
    config = SetTransformerConfig(n_genes=len(genes), n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                                  max_prompt=args.max_prompt, dropout=args.dropout)
    make_folders(args)
    _, record = set_training.train_set_model(
        train, genes, config=config, train_config=train_config_from(args), export_dir=args.out,
        run_dir=args.run_dir, resume=args.resume, val_fraction=args.val_fraction,
        cooccurrence_weight=args.cooccurrence_weight, init_from=args.init_from,
        record_extra=corpus_record(corpus, test),
    )
    return report(record, args.out)


# --- pathway-rerank -------------------------------------------------------------------------------


def add_pathway_rerank_arguments(parser: argparse.ArgumentParser) -> None:
    add_corpus_arguments(parser, "pathway-rerank", run_dir=None, val_fraction=None)
    parser.add_argument("--examples", type=cli.at_least(10), default=rerank_training.N_EXAMPLES,
                        help="training sets drawn as leave-group-out examples")
    model = parser.add_argument_group("model")
    model.add_argument("--n-layer", type=cli.at_least(1), default=RerankerConfig.n_layer)
    model.add_argument("--n-head", type=cli.at_least(1), default=RerankerConfig.n_head)
    model.add_argument("--n-embd", type=cli.at_least(1), default=RerankerConfig.n_embd)
    model.add_argument("--dropout", type=cli.number(0, 1), default=RerankerConfig.dropout)
    add_training_arguments(parser, rerank_training.TRAINING)


def run_pathway_rerank(args: argparse.Namespace) -> int:
    from cellang.completion.neighbours import FEATURES

    if args.resume and args.run_dir is None:
        raise ValueError("--resume needs --run-dir")
    pick_device(args.device)
    corpus, _, test, genes = corpus_splits(args.corpus)
    # the validation pathways that tuning and the benchmark's validation use are never examples
    store, validation_rows = rerank_training.leave_group_out_datastore(corpus, genes)
    make_folders(args)
    _, record = rerank_training.train_reranker(
        store, config=RerankerConfig(n_features=len(FEATURES), n_layer=args.n_layer, n_head=args.n_head,
                                     n_embd=args.n_embd, dropout=args.dropout),
        train_config=train_config_from(args), n_examples=args.examples, exclude_rows=validation_rows,
        export_dir=args.out, run_dir=args.run_dir, resume=args.resume,
        record_extra=corpus_record(corpus, test),
        progress=lambda fraction, text: print(text) if fraction in (0.0, 1.0) or "000 of" in text else None,
    )
    return report(record, args.out)


# --- cells-binned, cells-rank --------------------------------------------------------------------


def _add_cell_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    name = cell_training.MODEL_NAMES[mode]
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--datasets", nargs="+", default=None, help="atlas datasets (default: all)")
    data.add_argument("--data", nargs="+", type=Path, default=None, metavar="H5AD",
                      help="your own .h5ad files, streamed from disk chunk by chunk (any size)")
    data.add_argument("--census", choices=sorted(census.PRESETS), default=None,
                      help="a CELLxGENE Census preset, streamed (needs internet)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="fine-tune this cell encoder (e.g. checkpoints/cells-rank) on --data or --census")
    default_out = "checkpoints/<model> (models/<model>-finetuned with --data/--census)"
    parser.add_argument("--out", type=cli.output_dir, default=None, help=f"finished model (default {default_out})")
    parser.add_argument("--run-dir", type=cli.output_dir, default=REPO_ROOT / "runs" / name,
                        help="resumable checkpoints (not shipped)")
    parser.add_argument("--val-fraction", type=cli.fraction, default=cell_training.VAL_FRACTION,
                        help="cells held out for validation")
    parser.add_argument("--init-from-pathway", action="store_true",
                        help="start gene embeddings from the pathway GPT's (matching symbols)")
    parser.add_argument("--pathway-checkpoint", type=Path, default=cell_training.PATHWAY_CHECKPOINT)
    model = parser.add_argument_group("model")
    model.add_argument("--n-layer", type=cli.at_least(1), default=EncoderConfig.n_layer)
    model.add_argument("--n-head", type=cli.at_least(1), default=EncoderConfig.n_head)
    model.add_argument("--n-embd", type=cli.at_least(1), default=EncoderConfig.n_embd)
    model.add_argument("--dropout", type=cli.number(0, 1), default=EncoderConfig.dropout)
    model.add_argument("--max-len", type=cli.at_least(2), default=EncoderConfig.max_len,
                       help="tokens per cell, <cls> included")
    if mode == "binned":
        model.add_argument("--n-hvg", type=cli.at_least(1), default=binned.N_HVG,
                           help="highly variable genes (the vocabulary)")
        model.add_argument("--hvg-selection", choices=sorted(binned.HVG_SELECTIONS), default=binned.HVG_SELECTION,
                           help="shared: genes variable in the most datasets first (scanpy, batch = dataset); "
                                "per-dataset: each dataset's most variable genes, taken in turn")
        model.add_argument("--input-panel", type=cli.at_least(0), default=binned.INPUT_PANEL,
                           help="read each dataset through its own N most variable vocabulary genes (0: every "
                                "vocabulary gene); use with a broad vocabulary (--n-hvg)")
        model.add_argument("--pathway-genes", action="store_true",
                           help="the pathway model's genes join the vocabulary (a token for genes the atlas lacks)")
        model.add_argument("--n-bins", type=cli.at_least(3), default=EncoderConfig.n_bins,
                           help="value bins, bin 0 (zero) included")
        model.add_argument("--gepc-weight", type=cli.number(0), default=EncoderConfig.gepc_weight,
                           help="weight of the CLS expression loss")
        model.add_argument("--mask-ratio", type=cli.fraction, default=binned.MASK_RATIO,
                           help="gene values masked per cell")
    else:
        model.add_argument("--min-cells", type=cli.at_least(1), default=rank.MIN_CELLS,
                           help="vocabulary: genes expressed in >= N cells")
        model.add_argument("--mask-ratio", type=cli.fraction, default=rank.MASK_RATIO, help="genes masked per cell")
        model.add_argument("--rank-positions", choices=RANK_POSITIONS, default=EncoderConfig.rank_positions,
                           help="index: a position per place (Geneformer's); log: a position per rank bucket, so "
                                "that a model trained on windows reads a whole cell (use with --window)")
        model.add_argument("--window", type=cli.at_least(0), default=0,
                           help="train on windows of N tokens drawn from each cell's --max-len (0: whole cells)")
    add_training_arguments(parser, cell_training.TRAINING[mode])


def add_cells_binned_arguments(parser: argparse.ArgumentParser) -> None:
    _add_cell_arguments(parser, "binned")


def add_cells_rank_arguments(parser: argparse.ArgumentParser) -> None:
    _add_cell_arguments(parser, "rank")


def _model_config(args: argparse.Namespace, mode: str) -> EncoderConfig:
    return EncoderConfig(
        n_genes=0,  # set from the fitted vocabulary
        n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
        max_len=args.max_len, mode=mode, n_bins=args.n_bins if mode == "binned" else 0,
        gepc_weight=args.gepc_weight if mode == "binned" else EncoderConfig.gepc_weight,
        rank_positions=getattr(args, "rank_positions", EncoderConfig.rank_positions),
    )


def _cell_training_arguments(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """What both cell trainers (the atlas in memory, --data / --census streamed) take from the command line."""
    return dict(
        model_config=_model_config(args, mode), train_config=train_config_from(args),
        n_hvg=getattr(args, "n_hvg", binned.N_HVG), hvg_selection=getattr(args, "hvg_selection", binned.HVG_SELECTION),
        input_panel=getattr(args, "input_panel", binned.INPUT_PANEL),
        min_cells=getattr(args, "min_cells", rank.MIN_CELLS), mask_ratio=args.mask_ratio,
        window=getattr(args, "window", 0),
        val_fraction=args.val_fraction, init_pathway=args.pathway_checkpoint if args.init_from_pathway else None,
        run_dir=args.run_dir, export_dir=args.out, resume=args.resume,
    )


def _run_cells_streaming(args: argparse.Namespace, mode: str) -> int:
    """--data / --census: stream the cells, optionally fine-tuning --init-from."""
    if getattr(args, "pathway_genes", False):
        raise ValueError("--pathway-genes builds an atlas vocabulary; a fine-tuned model keeps its base's genes and "
                         "adds yours")
    from cellang.cells.stream import H5adCells
    from cellang.embedding.finetune import check_base_kind, train_cell_encoder_streaming

    name = cell_training.MODEL_NAMES[mode]
    args.out = args.out or user_model_dir() / f"{name}-{'finetuned' if args.init_from else 'trained'}"
    if args.init_from is not None:
        checkpoints.check_readable(args.init_from)
        check_base_kind(args.init_from, mode)  # before any folder is made; the weights are read once, later
    census_handle = None
    if args.data:
        source = H5adCells(args.data)
    else:
        census_handle, source = census.open_census_cells(census.PRESETS[args.census]())
    make_folders(args)
    try:
        result = train_cell_encoder_streaming(
            source, init_from=args.init_from, **_cell_training_arguments(args, mode),
            record_extra={"command_line": portable_command_line(sys.argv)})
    finally:
        if census_handle is not None:
            census_handle.close()
    return report(result.record, args.out)


def _run_cells(args: argparse.Namespace, mode: str) -> int:
    from cellang.atlas import atlas_datasets

    pick_device(args.device)  # fail fast on --device cuda without a GPU
    if args.data or args.census:
        return _run_cells_streaming(args, mode)
    if args.init_from is not None:
        raise ValueError("--init-from fine-tunes on your own cells: give them with --data FILE.h5ad or --census")
    args.out = args.out or CHECKPOINT_DIR / cell_training.MODEL_NAMES[mode]
    known = atlas_datasets()
    unknown = [name for name in args.datasets or () if name not in known]
    if unknown:
        raise ValueError(f"--datasets: no dataset {', '.join(map(repr, unknown))} in the cell atlas; "
                         f"it has {', '.join(known)}")
    if args.init_from_pathway:
        checkpoints.check_readable(args.pathway_checkpoint)
    adatas, manifest_sha256 = cell_training.load_atlas_corpus(args.datasets)
    make_folders(args)
    result = cell_training.train_cell_encoder(
        adatas,
        **_cell_training_arguments(args, mode),
        pathway_genes=getattr(args, "pathway_genes", False),
        record_extra={
            "atlas_manifest_sha256": manifest_sha256,
            "command_line": portable_command_line(sys.argv),
        },
    )
    return report(result.record, args.out)


def run_cells_binned(args: argparse.Namespace) -> int:
    return _run_cells(args, "binned")


def run_cells_rank(args: argparse.Namespace) -> int:
    return _run_cells(args, "rank")


# Sub-command name -> (add its arguments, run it). New models register here.
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "pathway": (add_pathway_arguments, run_pathway),
    "pathway-dae": (add_pathway_dae_arguments, run_pathway_dae),
    "pathway-set": (add_pathway_set_arguments, run_pathway_set),
    "pathway-rerank": (add_pathway_rerank_arguments, run_pathway_rerank),
    "cells-binned": (add_cells_binned_arguments, run_cells_binned),
    "cells-rank": (add_cells_rank_arguments, run_cells_rank),
}


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, run) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=f"train the {name} model")  # a cli.Parser too
        add_arguments(sub)
        sub.set_defaults(run=run)
    args = parser.parse_args(argv)
    if resuming(args.resume, args.run_dir):
        checkpoints.check_readable(args.run_dir)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
