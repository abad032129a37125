"""Choose the retrieval exponents, the GPT/retrieval interpolation weight, whether the retrieval
reader replaces retrieval, and the masked-set transformer's share beside the reader, without the test split.

Validation pathways are the training-split sets the GPT held out (its validation slice) whose
near-duplicate group has no other member in the training split, so they are as unseen as test
pathways. The retrieval datastore during tuning is the training split minus that slice. The set
model's share is also chosen on outside-style validation files (``cellang build external`` writes them
from sources that neither the corpus nor the external test files read). The benchmark's test pathways
and the external test files are never looked at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellang.completion import benchmark as bench
from cellang.completion.completer import PathwayCompleter
from cellang.completion.neighbours import Datastore
from cellang.completion.ranking import top_excluding
from cellang.completion.rerank import RerankCompleter, mixture, set_model_probabilities
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.completion.set_model import SINGLE_GENE_SHARE, SetModelCompleter
from cellang.completion.training import validation_slice
from cellang.corpus import Corpus
from cellang.genes import GeneResolver
from cellang.models.reranker import CandidateReranker

ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0)
POWERS = (1.0, 2.0, 3.0, 4.0, 6.0)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97, 1.0)


@dataclass(frozen=True)
class ValidationSplit:
    datastore: list[tuple[str, ...]]
    pathways: list[tuple[str, tuple[str, ...]]]


def validation_split(corpus: Corpus, val_fraction: float) -> ValidationSplit:
    """The GPT's validation slice (as train_pathway_model drew it), kept only where the set's
    near-duplicate group has no other training member."""
    train = corpus.split("train")
    _, held_out = validation_slice(range(len(train)), val_fraction)
    held = set(held_out)
    group_sizes = Counter(p.group for p in train)
    pathways = [(train[i].name, train[i].genes) for i in sorted(held) if group_sizes[train[i].group] == 1]
    datastore = [p.genes for i, p in enumerate(train) if i not in held]
    return ValidationSplit(datastore, pathways)


def _evaluate(cases: Sequence[bench.Case], probabilities: np.ndarray, universe: list[str], label: dict) -> dict:
    index = {g: i for i, g in enumerate(universe)}
    predictions = []
    for case, row in zip(cases, probabilities):
        top = top_excluding(row, [index[g] for g in case.prompt], len(case.masked))
        predictions.append([universe[i] for i in top])
    frame = bench.score(cases, predictions, len(universe), "tuning")
    return {**label, "significant": int(frame.significant.sum()), "median_recall": float(frame.recall.median()),
            "mean_recall": float(frame.recall.mean())}


def tune(corpus: Corpus, completer: PathwayCompleter, val_fraction: float, seed: int, mask_ratio: float = 0.8,
         ) -> tuple[dict, pd.DataFrame]:
    """Grid-search (alpha, power) for retrieval, then the weight; choose by mean recall on validation.

    Returns the chosen {"alpha", "power", "weight"} with their validation scores, and the whole grid.
    """
    split = validation_split(corpus, val_fraction)
    cases = bench.make_cases(split.pathways, mask_ratio, seed)
    prompts = [case.prompt for case in cases]
    universe = list(completer.vocabulary.genes)
    rows = []
    for alpha in ALPHAS:
        for power in POWERS:
            retrieval = SetRetrievalCompleter(split.datastore, universe, alpha=alpha, power=power)
            rows.append(_evaluate(cases, retrieval.probabilities(prompts), universe,
                                  {"stage": "retrieval", "alpha": alpha, "power": power, "weight": 1.0}))
    best = max((r for r in rows), key=lambda r: (r["mean_recall"], r["significant"]))
    retrieval = SetRetrievalCompleter(split.datastore, universe, alpha=best["alpha"], power=best["power"])
    retrieved, generated = retrieval.probabilities(prompts), completer.probabilities(prompts, seed=seed)
    for weight in WEIGHTS:
        rows.append(_evaluate(cases, (1 - weight) * generated + weight * retrieved, universe,
                              {"stage": "interpolation", "alpha": best["alpha"], "power": best["power"],
                               "weight": weight}))
    grid = pd.DataFrame(rows)
    chosen = grid[grid.stage == "interpolation"].sort_values(["mean_recall", "significant"], ascending=False).iloc[0]
    result = {"alpha": float(chosen.alpha), "power": float(chosen.power), "weight": float(chosen.weight),
              "validation": {"pathways": len(cases), "significant": int(chosen.significant),
                             "median_recall": float(chosen.median_recall), "mean_recall": float(chosen.mean_recall)}}
    return result, grid


def compare_reader(corpus: Corpus, reader: CandidateReranker, universe: Sequence[str], val_fraction: float, seed: int,
                   alpha: float, power: float, mask_ratio: float = 0.8) -> dict:
    """The retrieval reader against set retrieval (at ``alpha``, ``power``) on the validation pathways, each
    completing from the validation datastore; ``chosen`` is the better by mean recall (then significant),
    retrieval on a tie."""
    split = validation_split(corpus, val_fraction)
    cases = bench.make_cases(split.pathways, mask_ratio, seed)
    prompts, counts = [case.prompt for case in cases], [len(case.masked) for case in cases]
    methods = {"reader": RerankCompleter(Datastore(split.datastore, universe), reader),
               "retrieval": SetRetrievalCompleter(split.datastore, universe, alpha=alpha, power=power)}
    scores = {}
    for name, method in methods.items():
        frame = bench.score(cases, [[g for g, _ in ranked] for ranked in method.rank(prompts, counts)],
                            len(universe), name)
        scores[name] = {"pathways": len(cases), "significant": int(frame.significant.sum()),
                        "median_recall": float(frame.recall.median()), "mean_recall": float(frame.recall.mean())}
    key = {name: (s["mean_recall"], s["significant"]) for name, s in scores.items()}
    return {**scores, "chosen": "reader" if key["reader"] > key["retrieval"] else "retrieval"}


SET_MODEL_SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# How the set model reads a prompt inside the mixture: the whole prompt only, or mixed with each gene alone.
SINGLE_GENE_SHARES = (0.0, SINGLE_GENE_SHARE)


@dataclass(frozen=True)
class ValidationSource:
    """Pathways to complete (already masked) and the datastore they complete from."""

    name: str
    cases: list[bench.Case]
    datastore: list[tuple[str, ...]]


def outside_validation_sources(paths: Sequence[Path], corpus: Corpus, universe: Sequence[str], resolver: GeneResolver,
                               mask_ratio: float, seed: int) -> list[ValidationSource]:
    """The novel part (no training set at Jaccard >= 0.5) of each outside-style validation GMT, completed from the
    whole training split, as a user's list is; files with no novel set left are skipped."""
    train = [p.genes for p in corpus.split("train")]
    sources = []
    for path in paths:
        external = bench.load_external(Path(path), resolver, set(universe), train)
        novel = set(bench.novel_pathways(external.pathways, train))
        pathways = [p for p in external.pathways if p[0] in novel]
        if pathways:
            sources.append(ValidationSource(Path(path).name.split(".")[0], bench.make_cases(pathways, mask_ratio, seed),
                                            train))
    return sources


def validation_sources(corpus: Corpus, universe: Sequence[str], outside: Sequence[Path], resolver: GeneResolver,
                       val_fraction: float, mask_ratio: float, seed: int) -> list[ValidationSource]:
    """What the set model's share is chosen on: the validation pathways (completing from the validation datastore),
    then the novel part of each outside-style file in ``outside``."""
    split = validation_split(corpus, val_fraction)
    pathways = ValidationSource("validation pathways", bench.make_cases(split.pathways, mask_ratio, seed),
                                split.datastore)
    return [pathways, *outside_validation_sources(outside, corpus, universe, resolver, mask_ratio, seed)]


def choose_set_model_share(sources: Sequence[ValidationSource], reader: CandidateReranker,
                           set_model: SetModelCompleter, universe: Sequence[str],
                           shares: Sequence[float] = SET_MODEL_SHARES,
                           single_gene_shares: Sequence[float] = SINGLE_GENE_SHARES, batch: int = 256) -> dict:
    """Complete every source within ``universe`` (the shipped completer's) with (1 - w) x the reader's probability
    + w x the set model's, for each share w and each way the model reads a prompt (its ``single_gene_share`` s);
    the chosen pair has the highest mean, over the sources, of the share of pathways significant (each source
    counts once, whatever its size), the smaller s, then the smaller w, on a tie.
    Returns {"share", "single_gene_share", "mean_fraction_significant" (per w, at the chosen s),
    "mean_fraction_significant_by_single_gene_share", "grid": rows per source, s and w}."""
    universe = list(universe)
    readings = {s: set_model.reading(s) for s in single_gene_shares}
    rows = []
    for source in sources:
        reader_completer = RerankCompleter(Datastore(source.datastore, universe), reader)
        predictions: dict[tuple[float, float], list[list[str]]] = {
            (s, w): [] for s in single_gene_shares for w in shares}
        for start in range(0, len(source.cases), batch):
            block = source.cases[start : start + batch]
            prompts = [case.prompt for case in block]
            read = reader_completer.probabilities(prompts)
            for s, reading in readings.items():
                probabilities = (read, set_model_probabilities(reading, universe, prompts))
                for w in shares:
                    for case, row in zip(block, mixture(*probabilities, w)):
                        top = top_excluding(row, reader_completer.store.columns(case.prompt), len(case.masked))
                        predictions[s, w].append([universe[c] for c in top.tolist()])
        for (s, w), predicted in predictions.items():
            frame = bench.score(source.cases, predicted, len(universe), f"share {w}")
            rows.append({"source": source.name, "single_gene_share": float(s), "share": float(w),
                         "pathways": len(source.cases), "significant": int(frame.significant.sum()),
                         "median_recall": float(frame.recall.median()), "mean_recall": float(frame.recall.mean())})
    grid = pd.DataFrame(rows)
    grid["fraction"] = grid.significant / grid.pathways
    mean = grid.groupby(["single_gene_share", "share"], sort=True)["fraction"].mean()
    reading, best = mean.index[int(np.argmax(mean.to_numpy()))]  # argmax: the first (smallest) pair on a tie
    return {"share": float(best), "single_gene_share": float(reading),
            "mean_fraction_significant": {f"{w:g}": float(v) for (s, w), v in mean.items() if s == reading},
            "mean_fraction_significant_by_single_gene_share": {
                f"{s:g}": {f"{w:g}": float(v) for (s2, w), v in mean.items() if s2 == s} for s in single_gene_shares},
            "grid": grid.drop(columns="fraction").to_dict(orient="records")}
