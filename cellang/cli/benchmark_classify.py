"""Classifying cell states: a fine-tuned encoder against logistic regression on HVG + PCA, on held-out cells.

    cellang benchmark classify                                  # every labelled atlas dataset, cells-binned, 5 min
    cellang benchmark classify --encoders cells-binned cells-rank --minutes 8
    cellang benchmark classify --datasets hsmm --encoders runs/leaveout/hsmm/binned-1500
    cellang benchmark classify --datasets hsmm oligodendroglioma --encoders cells-binned leaveout:binned

For each labelled atlas dataset (obs cell_type; at most --max-cells cells, sampled with the seed; states with fewer
than 3 cells dropped and named), the cells are split per state into training, validation and test cells
(cellang/embedding/classify.py: stratified_split, the same split for every method). The baseline is a logistic
regression (balanced class weights) on the HVG + PCA embedding (1,200 genes, 50 components, as in the embedding
benchmark), its C and whether the components are standardised chosen on the validation cells; each encoder is fine-tuned with a classification head
(fine_tune_classifier: early stopping on the validation cells, a time budget per dataset). Both are scored once on the
test cells: macro-F1 (the mean of the per-state F1) and accuracy. The shipped encoders were pretrained, without labels,
on these datasets' cells; a leave-out encoder (cellang benchmark leaveout) never saw them.
Writes results/benchmark_classify.json and .md.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cellang import cli
from cellang.paths import REPO_ROOT

BASELINE = "HVG+PCA logistic regression"
C_GRID = (0.01, 0.1, 1.0, 10.0)
LABEL = "cell_type"
TARGET_MINUTES = 10.0  # the bound per dataset of up to 1,000 cells on 2 CPU cores
LEAVE_OUT = "leaveout:"  # an encoder spec: the dataset's own leave-out encoder of a recipe


def encoder_for(spec: str, dataset: str, folder: Path | None = None) -> str:
    """The encoder to fine-tune on ``dataset``: ``spec`` itself, or for "leaveout:RECIPE" the pretrained (not adapted)
    leave-out encoder that ``cellang benchmark leaveout`` kept in ``folder`` (default: its own); ValueError when there
    is none, or more than one."""
    from cellang.embedding.leaveout import MODELS_FOLDER, pretrained_folders

    if not spec.startswith(LEAVE_OUT):
        return spec
    recipe = spec[len(LEAVE_OUT):]
    folder = MODELS_FOLDER if folder is None else folder
    found = pretrained_folders(folder, dataset, recipe)
    if len(found) != 1:
        raise ValueError(f"{spec}: {'no' if not found else 'more than one'} pretrained {recipe} encoder without "
                         f"{dataset} in {folder / dataset} ({', '.join(f.name for f in found) or 'none'}); run "
                         f"`cellang benchmark leaveout --leave-out {dataset} --recipes {recipe}` first")
    return str(found[0])


def method_name(spec: str) -> str:
    return f"leave-out {spec[len(LEAVE_OUT):]} fine-tuned" if spec.startswith(LEAVE_OUT) else \
        f"{Path(spec).name} fine-tuned"


def labelled_datasets() -> list[str]:
    """Atlas datasets with at least two cell types."""
    from cellang.atlas import atlas_datasets
    from cellang.cells import load_atlas_dataset

    return [name for name in atlas_datasets()
            if LABEL in (a := load_atlas_dataset(name)).obs and a.obs[LABEL].nunique() >= 2]


def benchmark_cells(name: str, max_cells: int, seed: int) -> tuple[Any, list[str]]:
    """(the dataset's cells, at most max_cells sampled with the seed, without states of fewer than 3 cells; the
    states dropped)."""
    from cellang.cells import load_atlas_dataset
    from cellang.cells.io import sample_indices
    from cellang.embedding.classify import too_rare_states

    adata = load_atlas_dataset(name)
    chosen = sample_indices(adata.n_obs, max_cells, seed)
    if chosen is not None:
        adata = adata[np.sort(chosen)].copy()
    dropped = too_rare_states(adata.obs[LABEL].astype(str).to_numpy())
    if dropped:
        adata = adata[~adata.obs[LABEL].astype(str).isin(dropped).to_numpy()].copy()
    return adata, dropped


def logistic_baseline(adata, labels: np.ndarray, split, states: list[str], seed: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The baseline's validation and test scores; C and whether the components are standardised chosen on the
    validation cells (so the baseline is as strong as the validation cells can make it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from cellang.embedding.classify import scores
    from cellang.embedding.metrics import pca_embedding

    began = time.perf_counter()
    components = pca_embedding(adata, n_hvg=1200, n_pcs=50, seed=seed)
    targets = np.searchsorted(states, labels)
    best = None
    for standardised in (False, True):
        features = StandardScaler().fit(components[split.train]).transform(components) if standardised else components
        for c in C_GRID:
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
            model.fit(features[split.train], targets[split.train])
            f1 = scores(targets[split.validation], model.predict(features[split.validation]), states)["macro_f1"]
            if best is None or f1 > best[0]:
                best = (f1, c, standardised, model, features)
    _, c, standardised, model, features = best
    return {"validation": scores(targets[split.validation], model.predict(features[split.validation]), states),
            "test": scores(targets[split.test], model.predict(features[split.test]), states), "C": c,
            "standardised": standardised, "seconds": round(time.perf_counter() - began, 1)}


def run_benchmark(datasets: list[str], encoders: list[str], *, minutes: float, max_cells: int,
                  seed: int) -> dict[str, Any]:
    from cellang.embedding.classify import fine_tune_classifier, stratified_split
    from cellang.embedding.loading import shown_path

    results: dict[str, Any] = {}
    for name in datasets:
        adata, dropped = benchmark_cells(name, max_cells, seed)
        labels = adata.obs[LABEL].astype(str).to_numpy()
        states = sorted(set(labels.tolist()))
        split = stratified_split(labels, seed=seed)
        methods = {BASELINE: logistic_baseline(adata, labels, split, states, seed)}
        for encoder in encoders:
            began = time.perf_counter()
            model = encoder_for(encoder, name)
            result = fine_tune_classifier(adata, LABEL, model, minutes=minutes, save=False, seed=seed)
            assert np.array_equal(result.split.test, split.test)  # every method is scored on the same cells
            methods[method_name(encoder)] = {"encoder": shown_path(model),
                **result.metrics, "steps": result.record["steps"], "best_step": result.record["classifier"]["best_step"],
                "stopped_by": result.record["classifier"]["stopped_by"],
                "seconds": round(time.perf_counter() - began, 1)}
        results[name] = {"cells": int(adata.n_obs), "states": len(states), "states_dropped": dropped,
                         "split": {"train": int(split.train.size), "validation": int(split.validation.size),
                                   "test": int(split.test.size)}, "methods": methods}
        print(f"{name}: " + ", ".join(f"{m} {s['test']['macro_f1']:.3f}" for m, s in methods.items()), flush=True)
    return {"datasets": results, "encoders": encoders, "minutes": minutes, "max_cells": max_cells, "seed": seed,
            "label": LABEL}


def markdown(result: dict[str, Any]) -> str:
    datasets = result["datasets"]
    methods = list(next(iter(datasets.values()))["methods"])
    lines = ["# Classifying cell states on held-out cells", "",
             f"Macro-F1 (mean of the per-state F1) on the test cells of each labelled atlas dataset (obs "
             f"`{result['label']}`; at most {result['max_cells']:,} cells; states split per state into training, "
             f"validation and test cells, the same for every method; seed {result['seed']}). Baseline: logistic "
             f"regression on HVG + PCA, C and scaling chosen on the validation cells. Encoders: fine-tuned with a classification "
             f"head, a linear probe first, early stopping on the validation cells, at most {result['minutes']:g} "
             f"minutes per dataset on the machine that ran it. The shipped encoders were pretrained, without labels, "
             f"on these datasets' cells (a leave-out encoder never saw them). Command: `{result.get('command', '')}`.",
             "",
             "| dataset | cells | states | " + " | ".join(methods) + " |",
             "|---|--:|--:|" + "--:|" * len(methods)]
    for name, entry in datasets.items():
        lines.append(f"| {name} | {entry['cells']} | {entry['states']} | "
                     + " | ".join(f"{entry['methods'][m]['test']['macro_f1']:.3f}" for m in methods) + " |")
    means = {m: float(np.mean([d["methods"][m]["test"]["macro_f1"] for d in datasets.values()])) for m in methods}
    lines.append("| **mean** | | | " + " | ".join(f"**{means[m]:.3f}**" for m in methods) + " |")
    lines += ["", "## Target: at least the baseline's macro-F1 on every dataset, within 10 minutes per dataset", "",
              "| encoder | datasets at or above the baseline | slowest dataset, s |", "|---|---|--:|"]
    for method in methods[1:]:
        above = [n for n, d in datasets.items()
                 if d["methods"][method]["test"]["macro_f1"] >= d["methods"][BASELINE]["test"]["macro_f1"]]
        slowest = max(d["methods"][method]["seconds"] for d in datasets.values())
        lines.append(f"| {method} | {len(above)} of {len(datasets)}"
                     + (f" (below on {', '.join(n for n in datasets if n not in above)})" if len(above) < len(datasets)
                        else "") + f" | {slowest:.0f} |")
    lines += ["", "## Runs", "", "| dataset | method | validation macro-F1 | test accuracy | steps (best) | stopped by | "
              "seconds |", "|---|---|--:|--:|--:|---|--:|"]
    for name, entry in datasets.items():
        for method, s in entry["methods"].items():
            steps = (f"{s['steps']} ({s['best_step']})" if "steps" in s else
                     f"C = {s['C']:g}{', standardised' if s['standardised'] else ''}")
            lines.append(f"| {name} | {method} | {s['validation']['macro_f1']:.3f} | {s['test']['accuracy']:.3f} | "
                         f"{steps} | {s.get('stopped_by', '')} | {s['seconds']:.0f} |")
        if entry["states_dropped"]:
            lines.append(f"| {name} | states dropped (fewer than 3 cells) | {', '.join(entry['states_dropped'])} "
                         "| | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                        help="labelled atlas datasets (default: every one with at least two cell types)")
    parser.add_argument("--encoders", nargs="+", default=["cells-binned"], metavar="MODEL",
                        help="listed encoders (cells-binned, cells-rank, my-...), checkpoint folders, or leaveout:RECIPE "
                             "(each dataset's own leave-out encoder, e.g. leaveout:binned)")
    parser.add_argument("--minutes", type=cli.number(0, 240, above=True), default=5.0,
                        help="fine-tuning budget per dataset and encoder")
    parser.add_argument("--max-cells", type=cli.at_least(10), default=1000)
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--out", type=cli.output_prefix, default=REPO_ROOT / "results" / "benchmark_classify")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    known = labelled_datasets()
    datasets = args.datasets or known
    unknown = [d for d in datasets if d not in known]
    if unknown:
        raise ValueError(f"--datasets: {', '.join(unknown)} is not a labelled atlas dataset; the labelled ones are "
                         f"{', '.join(known)}")
    from cellang.embedding.adapt import base_checkpoint

    for encoder in args.encoders:  # an unknown encoder is refused before any training
        for dataset in datasets if encoder.startswith(LEAVE_OUT) else datasets[:1]:
            base_checkpoint(encoder_for(encoder, dataset))
    result = run_benchmark(datasets, args.encoders, minutes=args.minutes, max_cells=args.max_cells, seed=args.seed)
    result["command"] = cli.command_line("benchmark_classify", argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cli.write_results(args.out, result, markdown(result), indent=2, allow_nan=False)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
