"""Train the project's models; one sub-command per model.

    python scripts/train.py pathway                       # pathway GPT on the built corpus
    python scripts/train.py pathway --max-steps 200 --device cpu
    python scripts/train.py pathway --resume              # continue runs/pathway-gpt
    torchrun --nproc_per_node 4 scripts/train.py pathway  # DistributedDataParallel
    python scripts/train.py pathway-dae                   # gene-set denoising autoencoder baseline
    python scripts/train.py cells-binned                  # scGPT-style cell encoder on the atlas
    python scripts/train.py cells-rank --init-from-pathway  # Geneformer-style, pathway gene embeddings

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cellang_core import checkpoints, cli  # noqa: E402
from cellang_core.device import pick_device  # noqa: E402
from cellang_core.models.gpt import OBJECTIVES, GPTConfig  # noqa: E402
from cellang_core.paths import CHECKPOINT_DIR, REPO_ROOT  # noqa: E402
from cellang_core.training import TrainConfig, portable_command_line  # noqa: E402


def make_folders(args: argparse.Namespace) -> None:
    """--out and --run-dir, made once the inputs are known good and before training (not at the first
    checkpoint or the export), so a path inside a file fails before any work."""
    for folder in (args.out, args.run_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)


def add_training_arguments(parser: argparse.ArgumentParser, *, max_steps: int, lr: float) -> None:
    """Arguments every model's trainer shares (they fill TrainConfig)."""
    group = parser.add_argument_group("training")
    group.add_argument("--batch-size", type=cli.at_least(1), default=32, help="sequences per micro-batch")
    group.add_argument("--grad-accum", type=cli.at_least(1), default=1, help="micro-batches per optimizer step")
    group.add_argument("--lr", type=cli.number(0, above=True), default=lr, help="peak learning rate")
    group.add_argument("--min-lr", type=cli.number(0), default=None, help="final learning rate (default lr/10)")
    group.add_argument("--weight-decay", type=cli.number(0), default=0.1)
    group.add_argument("--max-steps", type=cli.at_least(1), default=max_steps, help="optimizer steps")
    group.add_argument("--warmup", type=cli.at_least(0), default=200, help="linear warm-up steps")
    group.add_argument("--eval-interval", type=cli.at_least(1), default=250, help="steps between validations")
    group.add_argument("--eval-batches", type=cli.at_least(0), default=20, help="validation batches (0 = all)")
    group.add_argument("--checkpoint-interval", type=cli.at_least(1), default=500, help="steps between checkpoints")
    group.add_argument("--seed", type=cli.seed, default=0)
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint in --run-dir")


def train_config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum,
        lr=args.lr,
        min_lr=args.min_lr if args.min_lr is not None else args.lr / 10,
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        eval_interval=args.eval_interval,
        eval_batches=args.eval_batches,
        checkpoint_interval=args.checkpoint_interval,
        seed=args.seed,
        device=args.device,
        compile=args.compile,
    )


# --- pathway ------------------------------------------------------------------------------------


def report(record: dict, out: Path) -> int:
    """Print a finished run's one-line summary; the exit status."""
    losses = ", ".join(
        f"{name} loss {record[key]:.4f}" for name, key in (("train", "final_train_loss"), ("val", "final_val_loss"))
        if record[key] is not None
    )
    print(f"{record['steps']} steps, {losses}, {record['wall_time_s']:.0f} s on {record['device']}; "
          f"model written to {out}")
    return 0


def add_pathway_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, default=None, help="built corpus directory (default data/corpus)")
    parser.add_argument("--out", type=cli.output_dir, default=CHECKPOINT_DIR / "pathway-gpt", help="finished model")
    parser.add_argument("--run-dir", type=cli.output_dir, default=REPO_ROOT / "runs" / "pathway-gpt",
                        help="resumable checkpoints (not shipped)")
    parser.add_argument("--val-fraction", type=cli.fraction, default=0.02, help="train sets held out for validation")
    model = parser.add_argument_group("model")
    model.add_argument("--n-layer", type=cli.at_least(1), default=4)
    model.add_argument("--n-head", type=cli.at_least(1), default=4)
    model.add_argument("--n-embd", type=cli.at_least(1), default=256)
    model.add_argument("--block-size", type=cli.at_least(2), default=512, help="max input tokens (genes + <bos>)")
    model.add_argument("--dropout", type=cli.number(0, 1), default=0.1)
    model.add_argument("--objective", choices=OBJECTIVES, default="set",
                       help="set: predict every unseen member at each position; next_token: plain LM")
    model.add_argument("--window", type=cli.at_least(1), default=128, help="set objective: genes fed per pathway")
    model.add_argument("--positions-per-set", type=cli.at_least(1), default=16,
                       help="set objective: positions scored")
    add_training_arguments(parser, max_steps=5000, lr=1e-3)


def corpus_splits(directory: Path | None) -> tuple[Any, list[list[str]], list[list[str]]]:
    """(corpus, train gene sets, test gene sets) of the built corpus (default: data/corpus)."""
    from cellang_core.corpus import load_corpus

    corpus = load_corpus(directory) if directory is not None else load_corpus()
    return (corpus, [p.genes for p in corpus.pathways if p.split == "train"],
            [p.genes for p in corpus.pathways if p.split == "test"])


def run_pathway(args: argparse.Namespace) -> int:
    # Imported here so other sub-commands do not pay for (or depend on) what they do not use.
    from cellang_core.completion.training import train_pathway_model
    from cellang_core.tokenizers.pathway import PathwayVocabulary

    pick_device(args.device)  # fail fast on --device cuda without a GPU
    corpus, train, test = corpus_splits(args.corpus)
    # All genes, test included, so test sets can be scored; the test sets themselves are unused.
    vocabulary = PathwayVocabulary.from_gene_sets(train + test)
    model_config = GPTConfig(
        vocab_size=len(vocabulary),
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
        objective=args.objective,
    )
    make_folders(args)
    result = train_pathway_model(
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
        record_extra={
            "corpus_manifest_sha256": corpus.manifest_sha256,
            "command_line": portable_command_line(sys.argv),
            "n_test_sets_unused": len(test),
        },
    )
    return report(result.record, args.out)


# --- pathway-dae --------------------------------------------------------------------------------


def add_pathway_dae_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, default=None, help="built corpus directory (default data/corpus)")
    parser.add_argument("--out", type=cli.output_dir, default=CHECKPOINT_DIR / "pathway-dae", help="finished model")
    parser.add_argument("--run-dir", type=cli.output_dir, default=None,
                        help="resumable checkpoints (not shipped); default: none")
    parser.add_argument("--val-fraction", type=cli.fraction, default=0.02, help="train sets held out for validation")
    model = parser.add_argument_group("model")
    # The first and last layers are genes x hidden each: hidden=192 keeps ~18k genes under 30 MB.
    model.add_argument("--hidden", type=cli.at_least(1), default=192, help="width of the outer hidden layers")
    model.add_argument("--latent", type=cli.at_least(1), default=128, help="width of the bottleneck")
    model.add_argument("--dropout", type=cli.number(0, 1), default=0.1)
    model.add_argument("--mask-min", type=cli.fraction, default=0.5, help="smallest fraction of a set hidden")
    model.add_argument("--mask-max", type=cli.fraction, default=0.9, help="largest fraction of a set hidden")
    # lr 1e-2: on the real corpus 500 steps reach val loss 7.15 (1e-3: ~8.7, 3e-3: 8.31, 3e-2: 7.65).
    add_training_arguments(parser, max_steps=1500, lr=1e-2)
    parser.set_defaults(batch_size=128, warmup=100, eval_interval=100)


def run_pathway_dae(args: argparse.Namespace) -> int:
    from cellang_core.completion.dae_training import train_dae
    from cellang_core.models.dae import DAEConfig
    from cellang_core.tokenizers.pathway import PathwayVocabulary

    if args.resume and args.run_dir is None:
        raise ValueError("--resume needs --run-dir")
    if args.mask_min > args.mask_max:
        raise ValueError(f"--mask-min ({args.mask_min}) must not exceed --mask-max ({args.mask_max})")
    pick_device(args.device)  # fail fast on --device cuda without a GPU
    corpus, train, test = corpus_splits(args.corpus)
    # The pathway GPT's gene universe: all genes, test included, sorted.
    genes = list(PathwayVocabulary.from_gene_sets(train + test).genes)
    make_folders(args)
    _, record = train_dae(
        train,
        genes,
        config=DAEConfig(n_genes=len(genes), hidden=args.hidden, latent=args.latent, dropout=args.dropout),
        train_config=train_config_from(args),
        export_dir=args.out,
        val_fraction=args.val_fraction,
        run_dir=args.run_dir,
        resume=args.resume,
        mask_ratio_range=(args.mask_min, args.mask_max),
        record_extra={
            "corpus_manifest_sha256": corpus.manifest_sha256,
            "command_line": portable_command_line(sys.argv),
            "n_test_sets_unused": len(test),
        },
    )
    return report(record, args.out)


# --- cells-binned, cells-rank --------------------------------------------------------------------


def _add_cell_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    name = f"cells-{mode}"
    parser.add_argument("--datasets", nargs="+", default=None, help="atlas datasets (default: all)")
    parser.add_argument("--out", type=cli.output_dir, default=CHECKPOINT_DIR / name, help="finished model")
    parser.add_argument("--run-dir", type=cli.output_dir, default=REPO_ROOT / "runs" / name,
                        help="resumable checkpoints (not shipped)")
    parser.add_argument("--val-fraction", type=cli.fraction, default=0.05, help="cells held out for validation")
    parser.add_argument("--init-from-pathway", action="store_true",
                        help="start gene embeddings from the pathway GPT's (matching symbols)")
    parser.add_argument("--pathway-checkpoint", type=Path, default=CHECKPOINT_DIR / "pathway-gpt")
    model = parser.add_argument_group("model")
    model.add_argument("--n-layer", type=cli.at_least(1), default=4)
    model.add_argument("--n-head", type=cli.at_least(1), default=4)
    model.add_argument("--n-embd", type=cli.at_least(1), default=128)
    # No dropout by default: attention dropout sends CPU attention down PyTorch's slow path (~1.75x per
    # step), and a few hundred steps over the atlas do not overfit (validation loss keeps falling).
    model.add_argument("--dropout", type=cli.number(0, 1), default=0.0)
    # 256 tokens keep a step near half a second on 2 CPU cores; most atlas cells have fewer genes.
    model.add_argument("--max-len", type=cli.at_least(2), default=256, help="tokens per cell, <cls> included")
    if mode == "binned":
        model.add_argument("--n-hvg", type=cli.at_least(1), default=1200, help="highly variable genes (the vocabulary)")
        model.add_argument("--n-bins", type=cli.at_least(3), default=51, help="value bins, bin 0 (zero) included")
        model.add_argument("--gepc-weight", type=cli.number(0), default=1.0, help="weight of the CLS expression loss")
        model.add_argument("--mask-ratio", type=cli.fraction, default=0.4, help="gene values masked per cell")
    else:
        model.add_argument("--min-cells", type=cli.at_least(1), default=10,
                           help="vocabulary: genes expressed in >= N cells")
        model.add_argument("--mask-ratio", type=cli.fraction, default=0.15, help="genes masked per cell")
    # The shipped models: binned 4000 steps of 32 cells (~47 epochs of the atlas, 20 min on 2 CPU cores;
    # 1200 steps scored AvgBIO 0.443, 4000 steps 0.596), rank 7000 steps (~82 epochs, 84 min; mean-pooled
    # AvgBIO 0.494 at 1200 steps, 0.561 at 3000, 0.604 at 7000).
    add_training_arguments(parser, max_steps=4000 if mode == "binned" else 7000, lr=2e-3)
    parser.set_defaults(warmup=50, eval_interval=100, checkpoint_interval=200)


def add_cells_binned_arguments(parser: argparse.ArgumentParser) -> None:
    _add_cell_arguments(parser, "binned")


def add_cells_rank_arguments(parser: argparse.ArgumentParser) -> None:
    _add_cell_arguments(parser, "rank")


def _run_cells(args: argparse.Namespace, mode: str) -> int:
    from cellang_core.atlas import atlas_datasets
    from cellang_core.embedding.training import load_atlas_corpus, train_cell_encoder
    from cellang_core.models.encoder import EncoderConfig

    pick_device(args.device)  # fail fast on --device cuda without a GPU
    known = atlas_datasets()
    unknown = [name for name in args.datasets or () if name not in known]
    if unknown:
        raise ValueError(f"--datasets: no dataset {', '.join(map(repr, unknown))} in the cell atlas; "
                         f"it has {', '.join(known)}")
    if args.init_from_pathway:
        checkpoints.check_readable(args.pathway_checkpoint)
    adatas, manifest_sha256 = load_atlas_corpus(args.datasets)
    model_config = EncoderConfig(
        n_genes=0,  # set from the fitted vocabulary
        n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
        max_len=args.max_len, mode=mode, n_bins=args.n_bins if mode == "binned" else 0,
        gepc_weight=args.gepc_weight if mode == "binned" else 1.0,
    )
    make_folders(args)
    result = train_cell_encoder(
        adatas,
        model_config=model_config,
        train_config=train_config_from(args),
        n_hvg=getattr(args, "n_hvg", 1200),
        min_cells=getattr(args, "min_cells", 10),
        mask_ratio=args.mask_ratio,
        val_fraction=args.val_fraction,
        init_pathway=args.pathway_checkpoint if args.init_from_pathway else None,
        run_dir=args.run_dir,
        export_dir=args.out,
        resume=args.resume,
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
    if args.resume and args.run_dir is not None and checkpoints.checkpoint_exists(args.run_dir):
        checkpoints.check_readable(args.run_dir)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
