"""Run the in-silico deletion workflow from the command line and write its tables.

    cellang delete                                   # HSMM: myotubes -> myoblast, all genes
    cellang delete --h5ad heart.h5ad --disease "hypertrophic cardiomyopathy"
    cellang delete --census --max-census-cells 5000  # cardiomyocytes from the Census (online)
    cellang delete --pairs 10                        # also every pair of the top 10 genes
    cellang delete --fine-tune 3                     # fine-tune on the two states first, rank by the goal probability

HSMM (the default, embedded): every expressed gene deleted in every myotube (49 cells), scored toward the
myoblast mean; validated against MYOD1, MYOG, MYF5, MYF6, MEF2C (AUROC). Cardiomyopathy (--h5ad or
--census): deletion in normal cardiomyocytes toward the disease, and treatment (deletion, or
--treatment-mode overexpress) in disease cardiomyocytes toward normal; validated against the HPO genes.
Writes <out>_<analysis>_ranked.csv, the GSEA prerank of the ranking (--prerank) and <out>.json.
A file or option that cannot work (not an .h5ad, NaN or negative values, no normal and disease cells,
--min-cells above the cells perturbed...) is refused before any model work: exit code 2 and one line.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from cellang import checkpoints, cli
from cellang.corpus import load_corpus
from cellang.defaults import FINE_TUNE_FIRST_MINUTES
from cellang.paths import REPO_ROOT
from cellang.perturbation.fine_tune_first import fine_tune_first, score_after_fine_tuning
from cellang.perturbation.pairs import MAX_PAIR_GENES, run_pair_deletions
from cellang.perturbation.presets import (
    check_cardiomyopathy,
    fetch_census_cardiomyocytes,
    hsmm_demo,
    hsmm_request,
    run_cardiomyopathy,
)
from cellang.perturbation.stats import permutation_p_floor, prerank_enrichment
from cellang.perturbation.workflow import (
    DEFAULT_GENE_TYPES,
    DeletionResult,
    PerturbationRequest,
    check_request,
)


def summary(result: DeletionResult, prerank: int, sets: dict, descriptions: dict, seed: int) -> dict:
    """The JSON report of one run; prerank: GSEA permutations, 0 for none."""
    out = {"data": result.data_note, "settings": result.settings, "messages": result.messages,
           "top_genes": result.targets.head(20)[["rank", "gene", "effect", "cells", "p", "q"]].to_dict("records"),
           "genes_toward_goal": int(len(result.targets)), "genes_away_from_goal": int(len(result.away)),
           "agreement_with_baselines_spearman": result.agreement,
           "baseline_validation": {name: {"auroc": v.auroc, "hits_top_n": v.hits_top_n}
                                   for name, v in result.baseline_validation.items()}}
    if result.validation is not None:
        v = result.validation
        out["validation"] = {"auroc": v.auroc, "known": v.n_known, "known_ranked": v.n_known_ranked,
                             "ranked": v.n_ranked, "top_n": v.top_n, "hits_top_n": v.hits_top_n,
                             "p_top_n": v.p_top_n, "p_auroc": v.p_auroc, "known_ranks": v.known_ranks,
                             "sentence": v.sentence()}
    if result.enrichment is not None:
        out["top50_enrichment"] = result.enrichment.head(5)[["name", "description", "overlap", "q"]].to_dict("records")
    if prerank:
        began = time.perf_counter()
        table = prerank_enrichment(result.ranked, sets, permutations=prerank, seed=seed, descriptions=descriptions,
                                   top=10)
        out["prerank"] = {"seconds": round(time.perf_counter() - began, 1), "permutations": prerank,
                          "smallest_possible_p": permutation_p_floor(prerank),
                          "top": table[["name", "description", "nes", "p", "fdr"]].to_dict("records")}
    return out


def checked_cells(adata, name: str):  # type: ignore[no-untyped-def]
    """``adata`` validated (CellFileError with every problem on one line: the sentences the app's upload
    shows) and re-indexed by approved gene symbol."""
    from cellang.cells import harmonise_var, validate_cells

    validate_cells(adata).raise_errors(name)
    return harmonise_var(adata)[0]


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--h5ad", type=Path, help="your cells (obs: cell type and disease columns)")
    source.add_argument("--census", action="store_true", help="cardiomyocytes from the CELLxGENE Census (online)")
    parser.add_argument("--max-census-cells", type=cli.at_least(1), default=5_000)
    parser.add_argument("--disease", default="dilated cardiomyopathy",
                        choices=["dilated cardiomyopathy", "hypertrophic cardiomyopathy"])
    parser.add_argument("--treatment-mode", default="delete", choices=["delete", "overexpress"])
    parser.add_argument("--max-cells", type=cli.at_least(1), default=200, help="start cells perturbed (seeded sample)")
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls"])
    parser.add_argument("--min-cells", type=cli.at_least(1), default=None,
                        help="rank only genes scored in at least this many cells (at most --max-cells; default 3, "
                             "or all cells when fewer are perturbed)")
    parser.add_argument("--all-gene-types", action="store_true",
                        help="perturb pseudogenes and other gene types too (default: protein-coding and lncRNA)")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                        help="bfloat16: 1.6x faster on a CPU with AVX512-BF16; ranking Spearman 0.9996 with float32")
    parser.add_argument("--screen", action="store_true",
                        help="estimate every deletion at once, then score the most promising genes exactly (faster on "
                             "large runs; deletions toward the goal state only; results/benchmark_perturb_screen.md)")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="an encoder's folder (rank or binned), e.g. one fine-tuned by cellang classify "
                             "(default: checkpoints/cells-rank)")
    parser.add_argument("--score", default=None, choices=["goal_shift", "goal_probability_shift", "shift"],
                        help="what each gene's effect is measured on (default: goal_shift; goal_probability_shift "
                             "needs a --checkpoint fine-tuned on the states by cellang classify)")
    parser.add_argument("--fine-tune", type=cli.number(0, 240, above=True), default=None, metavar="MINUTES",
                        help=f"fine-tune the encoder first, for at most MINUTES (the page's default: "
                             f"{FINE_TUNE_FIRST_MINUTES:g}), to tell the start cells from the goal "
                             "cells (saved as one of your models), then rank by the goal state's probability in it "
                             "(unless --score says otherwise)")
    parser.add_argument("--prerank", action="store_true", help="also GSEA-prerank the ranking (slower)")
    parser.add_argument("--pairs", type=cli.at_least(2), default=None, metavar="N",
                        help=f"also delete every pair of the top N genes (at most {MAX_PAIR_GENES}) in the same cells")
    parser.add_argument("--permutations", type=cli.integer, default=1000,
                        help="prerank permutations (p and FDR cannot go below 1/(permutations+1))")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "deletion_hsmm")
    args = parser.parse_args(argv)
    if args.permutations < 1:
        parser.error(f"--permutations must be at least 1, got {args.permutations}")
    if args.pairs is not None and args.pairs > MAX_PAIR_GENES:
        parser.error(f"--pairs: at most {MAX_PAIR_GENES} genes ({MAX_PAIR_GENES * (MAX_PAIR_GENES - 1) // 2} pairs), "
                     f"got {args.pairs}")
    if args.screen and args.treatment_mode == "overexpress":
        parser.error("--screen estimates deletions; score overexpression without --screen")
    if args.min_cells is not None and args.min_cells > args.max_cells:
        parser.error(f"--min-cells ({args.min_cells}) cannot exceed --max-cells ({args.max_cells}): no gene is "
                     "scored in more cells than are perturbed")
    if args.checkpoint is not None and checkpoints.why_missing("cells-rank", args.checkpoint):
        parser.error(f"--checkpoint: {checkpoints.why_missing('cells-rank', args.checkpoint)}")
    if args.fine_tune is not None and args.screen:
        parser.error("--screen estimates the embedding's goal shift; a run fine-tuned first is scored exactly")
    score = args.score if args.fine_tune is None else score_after_fine_tuning(args.score)
    settings = PerturbationRequest(max_cells=args.max_cells, pooling=args.pooling, seed=args.seed,
                                   device=args.device, min_cells=args.min_cells, precision=args.precision,
                                   method="screen" if args.screen else "exact", score=score,
                                   gene_types=None if args.all_gene_types else DEFAULT_GENE_TYPES)
    cardiomyopathy = {"disease": args.disease, "treatment_mode": args.treatment_mode}
    demo = args.h5ad is None and not args.census  # the embedded HSMM demo, not the user's heart cells
    if demo:
        from cellang.cells import load_atlas_dataset

        adata = load_atlas_dataset("hsmm")
        requests = {"hsmm": hsmm_request(settings)}
        check_request(adata, requests["hsmm"])  # before the encoder loads
    else:
        from cellang.cells import read_cells  # reads HDF5 through h5py: nothing is ever unpickled

        adata = (checked_cells(fetch_census_cardiomyocytes(args.max_census_cells, args.seed), "the Census cells")
                 if args.census else checked_cells(read_cells(args.h5ad), args.h5ad.name))
        settings = replace(settings, data_note=("Data shown: CELLxGENE Census cardiomyocytes" if args.census else
                                                f"Data shown: {args.h5ad.name}") + f" ({adata.n_obs:,} cells).")
        requests = check_cardiomyopathy(adata, settings, **cardiomyopathy)
    checkpoint = args.checkpoint
    if args.fine_tune is not None:  # one classifier of the two states serves every analysis of these cells
        first = next(iter(requests.values()))
        tuned = fine_tune_first(adata, first.selection, checkpoint or "cells-rank", minutes=args.fine_tune,
                                data_name="hsmm" if demo else "cells", seed=args.seed,
                                progress=lambda f, text: print(f"fine-tuning {f:6.1%} {text}", flush=True)
                                if round(f * 100) % 20 == 0 else None)
        print(f"fine-tuned first: {tuned.name} ({tuned.directory}), held-out macro-F1 "
              f"{tuned.metrics['test']['macro_f1']:.3f}")
        checkpoint = tuned.directory
    corpus = load_corpus()
    sets = {p.name: p.genes for p in corpus.pathways}
    descriptions = {p.name: p.description for p in corpus.pathways}
    resources = dict(checkpoint_dir=checkpoint, enrich_sets=sets, enrich_descriptions=descriptions,
                     progress=lambda f, text: print(f"{f:6.1%} {text}", flush=True) if round(f * 100) % 10 == 0
                     else None)
    if demo:
        results = {"hsmm": hsmm_demo(settings, **resources)}
    else:
        results = run_cardiomyopathy(adata, settings, **cardiomyopathy, **resources)
    report = {}
    model_name = checkpoint.name if checkpoint is not None else "cells-rank (shipped)"
    for name, result in results.items():
        path = args.out.parent / (f"{args.out.name}_ranked.csv" if len(results) == 1 else
                                  f"{args.out.name}_{name}_ranked.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        result.ranked.to_csv(path, index=False)
        report[name] = {"model": model_name,
                        **summary(result, args.permutations if args.prerank else 0, sets, descriptions, args.seed)}
        if args.pairs:
            top = result.ranked["gene"].head(args.pairs).tolist()
            _, pairs = run_pair_deletions(adata, requests[name], top, checkpoint_dir=checkpoint)
            pairs_path = path.with_name(path.name.replace("_ranked.csv", "_pairs_ranked.csv"))
            pairs.to_csv(pairs_path, index=False)
            report[name]["pairs"] = {"genes": top, "pairs_ranked": int(len(pairs)),
                                     "top": pairs.head(10)[["rank", "pair", "cells", "mean_score", "mean_interaction",
                                                            "q"]].to_dict("records")}
            print(f"  pairs of the top {len(top)} genes: {len(pairs):,} ranked -> {pairs_path}")
        print(f"{name} with {model_name}: {result.data_note}\n  {result.settings['pairs']:,} pairs in "
              f"{result.settings['seconds']} s; "
              f"{result.validation.sentence() if result.validation else 'no validation'}\n  ranked genes -> {path}")
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
