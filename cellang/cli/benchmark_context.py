"""What a longer context costs the rank encoder: how much of each cell it reads, and seconds per cell on this machine.

    cellang benchmark context                      # max_len 256 (shipped), 512, 1024, 2048 on atlas cells
    cellang benchmark context --lengths 256 2048 --cells 64

The shipped cells-rank reads each cell's top 255 genes. For each context length the cells of every atlas dataset
are tokenised with the shipped vocabulary and medians (only max_len changed), and an encoder of the shipped shape
(random weights: the cost does not depend on them) embeds a sample of them (one forward pass per cell, batched as
embed_cells does) and takes masked-gene training steps on them (forward + backward), timed on this machine's
threads. Reported per length, beside the shipped 256 in the same run: the share of a cell's expressed vocabulary
genes inside the context (median over cells, per dataset), and seconds per cell to embed and to train.
Writes results/benchmark_context.json and .md.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from cellang import cli
from cellang.paths import REPO_ROOT

SHIPPED_LENGTH = 256


def coverage(datasets: list[str], lengths: list[int]) -> dict[str, dict[int, float]]:
    """dataset -> length -> median share of a cell's expressed vocabulary genes inside the context."""
    from cellang.cells import load_atlas_dataset
    from cellang.embedding.loading import load_cell_encoder
    from cellang.tokenizers.rank import RankTokenizer

    _, shipped, _ = load_cell_encoder("cells-rank")
    whole = RankTokenizer(_with_max_len(shipped.vocabulary, 1_000_000))
    result = {}
    for name in datasets:
        expressed = np.array([len(g) - 1 for g in whole.tokenize(load_atlas_dataset(name)).genes])
        result[name] = {length: float(np.median(np.minimum(expressed, length - 1) / np.maximum(expressed, 1)))
                        for length in lengths}
        result[name]["median_expressed_genes"] = float(np.median(expressed))
    return result


def _with_max_len(vocabulary, max_len: int):  # type: ignore[no-untyped-def]
    from cellang.tokenizers.cells import CellVocabulary

    return CellVocabulary(vocabulary.genes, mode="rank", settings={**vocabulary.settings, "max_len": max_len},
                          gene_medians=vocabulary.gene_medians)


def timings(lengths: list[int], n_cells: int, seed: int) -> dict[int, dict[str, float]]:
    """length -> seconds per cell to embed and to train (masked genes, forward + backward), on the cells of the
    atlas with the most genes (hsmm), so that long contexts are filled."""
    import torch

    from cellang.cells import load_atlas_dataset
    from cellang.embedding.loading import load_cell_encoder
    from cellang.models.encoder import CellEncoder, EncoderConfig
    from cellang.tokenizers.cells import pad_rows
    from cellang.tokenizers.rank import RankBatcher, RankTokenizer

    shipped_model, shipped, _ = load_cell_encoder("cells-rank")
    cells = load_atlas_dataset("hsmm")
    result = {}
    for length in lengths:
        tokenizer = RankTokenizer(_with_max_len(shipped.vocabulary, length))
        tokens = tokenizer.tokenize(cells).subset(range(min(n_cells, cells.n_obs)))
        torch.manual_seed(seed)
        config = EncoderConfig(**{**shipped_model.config_dict(), "max_len": length})
        model = CellEncoder(config)
        model.eval()
        started = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(tokens), 16):
                model.embed(pad_rows(tokens.genes[start:start + 16]))
        embed_s = (time.perf_counter() - started) / len(tokens)
        model.train()
        batcher = RankBatcher(tokens, vocabulary_size=len(tokenizer.vocabulary), batch_size=min(8, len(tokens)),
                              seed=seed)
        batches = list(batcher.epoch_batches(0))
        started = time.perf_counter()
        for batch in batches:
            _, loss = model(*batch)
            loss.backward()
            model.zero_grad(set_to_none=True)
        train_s = (time.perf_counter() - started) / sum(len(b[0]) for b in batches)
        result[length] = {"embed_s_per_cell": embed_s, "train_s_per_cell": train_s,
                          "mean_tokens": float(np.mean([len(g) for g in tokens.genes]))}
        print(f"max_len {length}: {embed_s * 1000:.1f} ms/cell to embed, {train_s * 1000:.1f} ms/cell to train "
              f"({result[length]['mean_tokens']:.0f} tokens per cell)", flush=True)
    return result


def markdown(result: dict[str, Any]) -> str:
    lengths = result["lengths"]
    time_rows = result["timings"]
    base = time_rows[str(SHIPPED_LENGTH)] if str(SHIPPED_LENGTH) in time_rows else None
    lines = ["# What a longer context costs the rank encoder", "",
             f"Command: `{result['command']}`. {result['threads']} torch threads. Timings on hsmm cells "
             f"({result['cells']} cells, the atlas dataset with the most genes per cell), shipped cells-rank shape "
             "(random weights).", "",
             "| max_len | tokens per cell | embed, ms per cell | train, ms per cell | embed vs 256 | train vs 256 |",
             "|--:|--:|--:|--:|--:|--:|"]
    for length in lengths:
        row = time_rows[str(length)]
        ratio = (lambda k: f"{row[k] / base[k]:.1f}x") if base else (lambda k: "")
        lines.append(f"| {length} | {row['mean_tokens']:.0f} | {row['embed_s_per_cell'] * 1000:.1f} | "
                     f"{row['train_s_per_cell'] * 1000:.1f} | {ratio('embed_s_per_cell')} | "
                     f"{ratio('train_s_per_cell')} |")
    lines += ["", "Share of a cell's expressed vocabulary genes inside the context (median over the cells):", "",
              "| dataset | expressed genes (median) | " + " | ".join(f"max_len {n}" for n in lengths) + " |",
              "|---|--:|" + "--:|" * len(lengths)]
    for name, row in result["coverage"].items():
        lines.append(f"| {name} | {row['median_expressed_genes']:.0f} | "
                     + " | ".join(f"{row[str(n)]:.0%}" for n in lengths) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    from cellang.atlas import atlas_datasets

    parser = cli.Parser(description=__doc__)
    parser.add_argument("--lengths", nargs="+", type=cli.at_least(2), default=[256, 512, 1024, 2048])
    parser.add_argument("--cells", type=cli.at_least(1), default=48, help="hsmm cells timed per length")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_context")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    lengths = sorted(set(args.lengths) | {SHIPPED_LENGTH})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"lengths": lengths, "cells": args.cells, "threads": torch.get_num_threads(),
              "coverage": {d: {str(k): v for k, v in row.items()} for d, row in
                           coverage(atlas_datasets(), lengths).items()},
              "timings": {str(k): v for k, v in timings(lengths, args.cells, args.seed).items()},
              "command": cli.command_line("benchmark_context", argv)}
    cli.write_results(args.out, result, markdown(result), indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
