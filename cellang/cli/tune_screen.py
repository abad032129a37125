"""Choose the deletion screen's settings on validation cells, never on the benchmark's.

    cellang tune screen                     # 200 cells, about 15 min on 2 CPU cores
    cellang tune screen --cells 20 --out /tmp/tune   # a quick look

Validation cells: spectra_immune CD4 T cells (drawn with replacement, seed 1) scored toward the mean
embedding of its Treg cells, with the shipped cells-rank; cellang benchmark perturb measures the
chosen settings on HSMM cells afterwards. Every expressed gene of each cell is deleted and scored exactly
once; the screen's estimates are computed for each stride, and stage 2 (candidate genes, a seeded draw
of their cells, calibration) is replayed on the exact scores with the library's own functions, so every
setting costs one exact run. Recall = share of the exact ranking's top n genes (rank_genes: shrunk mean
goal shift) in the screen's top n, for genes in >= 1 and >= 3 cells. Work per cell: shifted-position
passes (L / stride) and exact deletions; the naive loop does L per cell.

Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from cellang import cli
from cellang.cells import load_atlas_dataset
from cellang.cells.io import subset_cells
from cellang.embedding.loading import load_cell_encoder
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT
from cellang.perturbation.engine import Perturber, plan_perturbations
from cellang.perturbation.screen import (
    calibrate, candidate_genes, estimate_deletions, exact_sample, pair_estimates
)
from cellang.perturbation.stats import rank_genes

MIN_CELLS = (1, 3)
TOP = (50, 100)


def ranking(gene_ids: np.ndarray, values: np.ndarray, min_cells: int) -> list[str]:
    frame = pd.DataFrame({"gene": gene_ids.astype(str), "shift": np.nan, "goal_shift": values})
    return list(rank_genes(frame, score="goal_shift", min_cells=min_cells)["gene"])


def recalls(gene_ids: np.ndarray, values: np.ndarray, truth: dict[int, list[str]]) -> dict[str, float]:
    out = {}
    for min_cells in MIN_CELLS:
        found = ranking(gene_ids, values, min_cells)
        for n in TOP:
            out[f"recall_top{n}_min_cells{min_cells}"] = len(set(truth[min_cells][:n]) & set(found[:n])) / n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--cells", type=cli.at_least(1), default=200)
    parser.add_argument("--strides", type=cli.at_least(1), nargs="+", default=[16, 32, 48])
    parser.add_argument("--candidates", type=cli.at_least(1), nargs="+", default=[100, 150, 200])
    parser.add_argument("--cells-per-gene", type=cli.at_least(1), nargs="+", default=[3, 5, 8])
    parser.add_argument("--min-cells", type=cli.at_least(1), default=3, help="the ranking floor candidates use")
    parser.add_argument("--seed", type=cli.seed, default=1)
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "tune_screen")
    args = parser.parse_args(argv)
    encoder, tokenizer, _ = load_cell_encoder("cells-rank", CHECKPOINT_DIR / "cells-rank")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    adata = load_atlas_dataset("spectra_immune")
    kinds = adata.obs["cell_type"].astype(str).to_numpy()
    every = tokenizer.tokenize(subset_cells(adata, np.flatnonzero(kinds == "CD4_T"))).genes
    chosen = np.random.default_rng(args.seed).choice(len(every), size=args.cells, replace=True)
    tokens = [every[i] for i in chosen]
    perturber = Perturber(encoder, pooling="mean", device="cpu")
    goal = perturber.embed(tokenizer.tokenize(subset_cells(adata, np.flatnonzero(kinds == "Treg"))).genes).mean(0)
    plan = plan_perturbations(tokens, None, "delete")
    exact = perturber.score(tokens, plan, goal).goal_shift
    truth = {m: ranking(plan.gene_ids, exact, m) for m in MIN_CELLS}
    mean_length = float(np.mean([len(t) - 1 for t in tokens]))
    rows = []
    for stride in args.strides:
        per_cell = estimate_deletions(encoder, tokens, goal, pooling="mean", stride=stride)
        estimate = pair_estimates(plan, per_cell)
        base = {"stride": stride, "shift_passes_per_cell": mean_length / stride,
                "spearman_estimate": float(stats.spearmanr(estimate, exact)[0])}
        rows.append({**base, "candidates": 0, "cells_per_gene": 0, "exact_per_cell": 0.0,
                     **recalls(plan.gene_ids, estimate, truth)})
        for candidates, cells_per_gene in itertools.product(args.candidates, args.cells_per_gene):
            genes = candidate_genes(plan.gene_ids, estimate, candidates, args.min_cells)
            picked = exact_sample(plan.gene_ids, genes, cells_per_gene, args.seed)
            values = calibrate(plan.gene_ids, estimate, picked, exact[picked])
            rows.append({**base, "candidates": candidates, "cells_per_gene": cells_per_gene,
                         "exact_per_cell": len(picked) / len(tokens), **recalls(plan.gene_ids, values, truth)})
        print(f"stride {stride} done", flush=True)
    command = cli.command_line("tune_screen", argv)
    result = {"cells": args.cells, "pairs": len(plan), "mean_genes_per_cell": mean_length, "seed": args.seed,
              "min_cells": args.min_cells, "rows": rows, "command": command}
    lines = ["# Deletion screen settings, chosen on validation cells", "",
             f"{args.cells} spectra_immune CD4 T cells (seed {args.seed}) toward the Treg mean; {len(plan):,} "
             f"deletions, {mean_length:.1f} genes per cell. Work per cell = shifted-position passes + exact "
             "deletions (the naive loop: one pass per gene) plus one forward and backward pass. Candidates 0: the "
             "estimate alone.", "",
             "| stride | candidates | cells per gene | shift passes / cell | exact / cell | Spearman, estimate | "
             "recall top 50 / 100 | same, genes in >= 3 cells |", "|--:|--:|--:|--:|--:|--:|--|--|"]
    for r in rows:
        lines.append(f"| {r['stride']} | {r['candidates']} | {r['cells_per_gene']} | "
                     f"{r['shift_passes_per_cell']:.1f} | {r['exact_per_cell']:.1f} | {r['spearman_estimate']:.3f} | "
                     f"{r['recall_top50_min_cells1']:.2f} / {r['recall_top100_min_cells1']:.2f} | "
                     f"{r['recall_top50_min_cells3']:.2f} / {r['recall_top100_min_cells3']:.2f} |")
    lines += ["", f"Command: `{command}`", ""]
    cli.write_results(args.out, result, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
