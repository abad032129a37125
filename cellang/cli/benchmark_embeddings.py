"""Benchmark the cell encoders' embeddings against HVG + PCA on the labelled atlas datasets.

    cellang benchmark embeddings                       # shipped cells-binned and cells-rank
    cellang benchmark embeddings --model cells-binned-random=runs/cells-binned-random/model ...

For every atlas dataset with cell-type labels (celltypist_immune has none and is skipped), every
encoder's CLS and mean-pooled embeddings and the HVG + PCA baseline (1200 HVG, 50 PCs) are scored in
the same run with `cellang.embedding.metrics`: NMI and ARI of a clustering (Leiden at
several resolutions when igraph is installed, else k-means with k = number of cell types; the same
procedure for every method), the label silhouette ASW rescaled to [0, 1], AvgBIO = their mean, and
the batch ASW where a dataset has more than one batch. Writes results/benchmark_embeddings.json and
.md (per dataset, the mean over datasets, and each encoder's pathway-initialised vs random variant
when both are given).

Caveat, stated in the output: the encoders were trained (self-supervised, labels never seen) on
these same atlas cells, as in a zero-shot evaluation on pre-training data.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cellang import checkpoints, cli
from cellang.checkpoints import CheckpointError
from cellang.paths import CHECKPOINT_DIR, REPO_ROOT

DEFAULT_MODELS = {"cells-binned": CHECKPOINT_DIR / "cells-binned", "cells-rank": CHECKPOINT_DIR / "cells-rank"}
BASELINE = "HVG+PCA"
METRICS = ("avg_bio", "nmi", "ari", "asw", "batch_asw")


def labelled_datasets() -> list[str]:
    """Atlas datasets with at least two cell types (by the obs tables; X is not read)."""
    from cellang.atlas import atlas_datasets, atlas_obs

    return [name for name in atlas_datasets() if atlas_obs(name)["cell_type"].astype(str).nunique() >= 2]


def check_inputs(models: dict[str, Path], datasets: list[str] | None) -> list[str]:
    """Load every encoder (cached for the run) and check the datasets before any scoring; returns the
    datasets to score. A corrupt checkpoint (weights, JSON, config keys) is one error naming the folder."""
    from cellang.atlas import atlas_datasets
    from cellang.embedding.loading import load_cell_encoder

    for name, directory in models.items():
        problem = checkpoints.why_missing(name, directory)
        if problem:
            raise FileNotFoundError(f"--model {name}: {problem}")
        try:
            load_cell_encoder(name, directory)
        except CheckpointError as error:
            raise CheckpointError(f"--model {name}: {error}") from error
    labelled = labelled_datasets()
    for name in datasets or ():
        if name not in labelled:
            known = atlas_datasets()
            reason = "has fewer than two cell types" if name in known else "is not in the cell atlas"
            raise ValueError(f"--datasets: {name!r} {reason}; labelled datasets: {', '.join(labelled)}")
    return datasets or labelled


def run_benchmark(models: dict[str, Path], datasets: list[str], seed: int = 0) -> dict[str, Any]:
    """Scores per dataset and method: {"datasets": {name: {"cells", "cell_types", "batches",
    "methods": {method: scores}}}, "mean": {method: {metric: mean over datasets}}, ...}."""
    from cellang.cells import load_atlas_dataset
    from cellang.embedding.embed import embed_cells
    from cellang.embedding.metrics import clustering_method, embedding_scores, pca_embedding, view_scores

    results: dict[str, Any] = {}
    for name in datasets:
        started = time.perf_counter()
        adata = load_atlas_dataset(name)
        labels = adata.obs["cell_type"].astype(str).to_numpy()
        batches = adata.obs["batch"].astype(str).to_numpy()
        methods: dict[str, dict[str, float | None]] = {
            BASELINE: embedding_scores(pca_embedding(adata, n_hvg=1200, n_pcs=50, seed=seed), labels, batches, seed)}
        coverage = {}
        for model, directory in models.items():
            embed_cells(adata, model=model, checkpoint_dir=directory)
            methods |= view_scores(adata, model, labels, batches, seed)
            coverage[model] = round(float(adata.uns["cellang_embedding"][model]["fraction_model_genes_present"]), 3)
        results[name] = {"cells": int(adata.n_obs), "cell_types": int(len(set(labels))),
                         "batches": int(len(set(batches))), "value_kind": str(adata.obs["value_kind"].iloc[0]),
                         "model_genes_present": coverage, "methods": methods,
                         "seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: " + ", ".join(f"{m} {s['avg_bio']:.3f}" for m, s in methods.items()), flush=True)
    method_names = list(next(iter(results.values()))["methods"]) if results else []
    mean = {m: {k: _mean([results[d]["methods"][m][k] for d in results]) for k in METRICS} for m in method_names}
    return {"datasets": results, "mean": mean, "clustering": clustering_method(), "seed": seed,
            "models": {m: _portable(p) for m, p in models.items()},
            "records": {m: _record_summary(p) for m, p in models.items()},
            "pathway_init": pathway_comparison(mean, models)}


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _portable(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return Path(path).name


def _record_summary(directory: Path) -> dict[str, Any]:
    from cellang import checkpoints

    _, _, record = checkpoints.read_metadata(directory)
    init = record.get("init_from_pathway")
    return {"command_line": record.get("command_line"), "steps": record.get("steps"),
            "final_val_loss": record.get("final_val_loss"), "wall_time_s": record.get("wall_time_s"),
            "init_from_pathway": bool(init), "genes_initialised": init.get("genes_initialised") if init else 0,
            "atlas_manifest_sha256": record.get("atlas_manifest_sha256")}


def pathway_comparison(mean: dict[str, dict[str, float | None]], models: dict[str, Path]) -> list[dict[str, Any]]:
    """For every pair of models that differ only in pathway initialisation (by their records:
    same command line without --init-from-pathway/--out/--run-dir), mean AvgBIO of each."""
    def key(directory: Path) -> tuple[str, ...]:
        words = (_record_summary(directory)["command_line"] or "").split()
        kept, skip = [], False
        for word in words:
            if skip:
                skip = False
                continue
            if word in ("--out", "--run-dir"):
                skip = True
                continue
            if word != "--init-from-pathway" and not word.startswith(("--out=", "--run-dir=")):
                kept.append(word)
        return tuple(kept)

    summaries = {m: _record_summary(p) for m, p in models.items()}
    pairs = []
    for with_init, directory in models.items():
        if not summaries[with_init]["init_from_pathway"]:
            continue
        for without, other in models.items():
            if not summaries[without]["init_from_pathway"] and key(other) == key(directory):
                for view in ("CLS", "mean"):
                    a, b = mean[f"{with_init} {view}"]["avg_bio"], mean[f"{without} {view}"]["avg_bio"]
                    pairs.append({"pathway_init": f"{with_init} {view}", "random_init": f"{without} {view}",
                                  "avg_bio_pathway": a, "avg_bio_random": b,
                                  "difference": None if a is None or b is None else a - b})
    return pairs


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown tables (what the README quotes)."""
    lines = ["# Cell embedding benchmark", "",
             f"Clustering: {result['clustering']}. Seed {result['seed']}. ASW: label silhouette (euclidean) "
             "rescaled to [0, 1]; batch ASW: 1 - |batch silhouette| within cell types (only datasets with "
             "more than one batch). The encoders were trained self-supervised on these atlas cells "
             "(labels never seen)." + (f" Command: `{result['command']}`." if result.get("command") else ""), "",
             "## Mean over datasets", "", "| method | AvgBIO | NMI | ARI | ASW | batch ASW |", "|---|---:|---:|---:|---:|---:|"]
    for method, scores in result["mean"].items():
        lines.append(f"| {method} | " + " | ".join(_cell(scores[k]) for k in METRICS) + " |")
    lines += ["", "## Per dataset", "", "| dataset | cells | types | batches | method | AvgBIO | NMI | ARI | ASW | batch ASW |",
              "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for name, entry in result["datasets"].items():
        for method, scores in entry["methods"].items():
            lines.append(f"| {name} | {entry['cells']} | {entry['cell_types']} | {entry['batches']} | {method} | "
                         + " | ".join(_cell(scores[k]) for k in METRICS) + " |")
    if result["pathway_init"]:
        lines += ["", "## Pathway-initialised gene embeddings vs random initialisation", "",
                  "| pathway-initialised | AvgBIO | random init | AvgBIO | difference |", "|---|---:|---|---:|---:|"]
        for pair in result["pathway_init"]:
            lines.append(f"| {pair['pathway_init']} | {_cell(pair['avg_bio_pathway'])} | {pair['random_init']} | "
                         f"{_cell(pair['avg_bio_random'])} | {_cell(pair['difference'])} |")
    lines += ["", "## Models", ""]
    for model, summary in result["records"].items():
        lines.append(f"- `{model}` ({result['models'][model]}): `{summary['command_line']}` — {summary['steps']} steps, "
                     f"val loss {_cell(summary['final_val_loss'])}, {summary['wall_time_s']:.0f} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--model", action="append", default=None, metavar="NAME=DIR",
                        help="an encoder checkpoint to score (repeatable; default: the shipped two)")
    parser.add_argument("--datasets", nargs="+", default=None, help="atlas datasets (default: all labelled)")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_embeddings",
                        help="output stem: writes STEM.json and STEM.md")
    args = parser.parse_args(argv)
    models = DEFAULT_MODELS
    if args.model:
        models = {}
        for item in args.model:
            name, equals, directory = item.partition("=")
            if not (equals and name and directory):
                parser.error(f"argument --model: takes NAME=DIR, got {item!r}")
            if name in models:
                parser.error(f"argument --model: {name!r} is given twice")
            models[name] = Path(directory)
    warnings.simplefilter("ignore")  # pandas 3 deprecations inside anndata/scanpy
    datasets = check_inputs(models, args.datasets)
    # Made once the inputs are known good and before any work, so an --out inside a file fails early.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(models, datasets, seed=args.seed)
    result["command"] = cli.command_line("benchmark_embeddings", argv)
    cli.write_results(args.out, result, markdown(result), indent=2, allow_nan=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
