"""The pathway-completion benchmark: mask, complete with every method, score the overlap.

For each pathway, ``mask_ratio`` of its genes are held out (seeded per pathway), each method predicts
as many genes as were held out from the remaining prompt, and the overlap with the held-out genes is
tested with a one-sided Fisher exact test (universe = the model's vocabulary), Benjamini-Hochberg
corrected within each method. The reference work reported 660/1000 significant at q < 0.05 and a
median recall of 7.7%, without baselines; here every method is scored on the same masks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cellang.completion.baselines import Completer
from cellang.completion.completer import mask_pathway
from cellang.corpus.qc import QcParams, max_jaccard_to
from cellang.genes import GeneResolver
from cellang.gmt import GmtProblem, GmtReadResult, read_gmt
from cellang.stats import benjamini_hochberg, overlap_p_value
from cellang.text import plural

ALPHA = 0.05
NOVEL_JACCARD = 0.5  # a test pathway is "novel" when no training set reaches this Jaccard similarity to it
# An external test set needs this many vocabulary genes (the corpus's smallest sets). There is no upper limit of
# its own (the corpus's 500 is its QC, not a benchmark rule; --max-size applies it), but a set of more than half
# the vocabulary leaves fewer genes outside it than it hides, so that any method, random included, recovers it.
MIN_EXTERNAL_SIZE = QcParams().min_size
MAX_VOCABULARY_SHARE = 0.5


@dataclass(frozen=True)
class Case:
    name: str
    genes: tuple[str, ...]
    prompt: tuple[str, ...]
    masked: tuple[str, ...]


def make_cases(pathways: Sequence[tuple[str, Sequence[str]]], mask_ratio: float, seed: int) -> list[Case]:
    """Mask each (name, genes) pathway with its own seed (seed, index), so masks do not depend on order
    of evaluation or on which methods run."""
    cases = []
    for index, (name, genes) in enumerate(pathways):
        split = mask_pathway(genes, mask_ratio, seed=(seed, index))
        cases.append(Case(name, split.genes, split.prompt, split.masked))
    return cases


def score(cases: Sequence[Case], predictions: Sequence[Sequence[str]], universe_size: int, method: str) -> pd.DataFrame:
    """One row per case: overlap, recall, precision, Fisher p, BH q (within this method), significant."""
    rows = []
    for case, predicted in zip(cases, predictions):
        overlap = len(set(predicted) & set(case.masked))
        rows.append({
            "method": method, "pathway": case.name, "n_genes": len(case.genes), "n_prompt": len(case.prompt),
            "n_masked": len(case.masked), "n_predicted": len(predicted), "overlap": overlap,
            "recall": overlap / len(case.masked), "precision": overlap / len(predicted) if predicted else 0.0,
            "p_value": overlap_p_value(overlap, len(predicted), len(case.masked), universe_size),
        })
    frame = pd.DataFrame(rows)
    frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy())
    frame["significant"] = frame["q_value"] < ALPHA
    return frame


def summarise(per_case: pd.DataFrame) -> pd.DataFrame:
    """Per method: pathways, significant at q < 0.05, median/mean recall, median precision, zero overlap, and
    (when ``per_case`` has run()'s timing) milliseconds per pathway."""
    grouped = per_case.groupby("method", sort=False)
    summary = pd.DataFrame({
        "pathways": grouped.size(),
        "significant": grouped["significant"].sum(),
        "median_recall": grouped["recall"].median(),
        "mean_recall": grouped["recall"].mean(),
        "median_precision": grouped["precision"].median(),
        "zero_overlap": grouped["overlap"].apply(lambda o: int((o == 0).sum())),
    })
    if "prompt_genes_unknown" in per_case:
        summary["prompt_genes_unknown"] = grouped["prompt_genes_unknown"].sum()
    if "seconds" in per_case:
        summary["ms_per_pathway"] = 1000 * grouped["seconds"].mean()
    summary = summary.reset_index()
    return summary.sort_values(["significant", "median_recall"], ascending=False, ignore_index=True)


def novel_pathways(pathways: Sequence[tuple[str, Sequence[str]]], train_sets: Sequence[Sequence[str]],
                   threshold: float = NOVEL_JACCARD) -> list[str]:
    """Names of the pathways with no training set at Jaccard >= ``threshold``: where looking up a near-twin
    cannot help, so a method must generalise."""
    best = max_jaccard_to(train_sets, [genes for _, genes in pathways]) if pathways else []
    return [name for (name, _), value in zip(pathways, best) if value < threshold]


def subset_view(per_case: pd.DataFrame, names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-case table and summary restricted to ``names``, with BH q recomputed within the subset (per
    method), so its significance does not borrow from the pathways left out."""
    frames = []
    for _, rows in per_case[per_case["pathway"].isin(set(names))].groupby("method", sort=False):
        rows = rows.copy()
        rows["q_value"] = benjamini_hochberg(rows["p_value"].to_numpy())
        rows["significant"] = rows["q_value"] < ALPHA
        frames.append(rows)
    subset = pd.concat(frames, ignore_index=True) if frames else per_case.iloc[0:0]
    return subset, summarise(subset)


def method_genes(completer: Completer) -> frozenset[str] | None:
    """The genes a method can read in a prompt: its model's vocabulary or its datastore's universe (None: any)."""
    for owner in (completer, getattr(completer, "completer", None), getattr(completer, "store", None)):
        for attribute in ("universe", "genes"):
            genes = getattr(owner, attribute, None) if owner is not None else None
            if isinstance(genes, (list, tuple)):
                return frozenset(genes)
    return None


def readable_prompts(completer: Completer,
                     prompts: Sequence[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], list[int]]:
    """(each prompt without the genes ``completer`` cannot read, how many each lost): a gene list from outside
    the corpus meets methods with different vocabularies, and each reads what it knows."""
    known = method_genes(completer)
    if known is None:
        return list(prompts), [0] * len(prompts)
    kept = [tuple(g for g in prompt if g in known) for prompt in prompts]
    return kept, [len(prompt) - len(k) for prompt, k in zip(prompts, kept)]


def run(cases: Sequence[Case], completers: Sequence[Completer], universe_size: int,
        progress: Callable[[str], None] = lambda _: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every completer on the same cases, each predicting as many genes as were masked; a prompt gene a method
    cannot read is left out of its prompt and counted (``prompt_genes_unknown``)."""
    prompts = [case.prompt for case in cases]
    counts = [len(case.masked) for case in cases]
    frames = []
    for completer in completers:
        progress(f"completing {len(cases)} pathways with {completer.name}")
        started = time.perf_counter()
        readable, unknown = readable_prompts(completer, prompts)
        ranked = completer.rank(readable, counts)
        frame = score(cases, [[gene for gene, _ in r] for r in ranked], universe_size, completer.name)
        frame["prompt_genes_unknown"] = unknown
        frame["seconds"] = (time.perf_counter() - started) / max(len(cases), 1)  # mean per pathway, all in one call
        frames.append(frame)
    per_case = pd.concat(frames, ignore_index=True)
    return per_case, summarise(per_case)


@dataclass(frozen=True)
class ExternalSets:
    """An external GMT as benchmark input, with what happened to its sets on the way."""

    pathways: list[tuple[str, tuple[str, ...]]]
    read: int
    too_small: list[str]
    too_large: list[str]
    near_duplicates: int  # kept sets with Jaccard >= threshold to some training set
    threshold: float
    skipped_lines: int  # lines the lenient GMT reader could not read
    sizes: tuple[int, int]  # (fewest, most) vocabulary genes a kept set has after harmonisation

    def summary(self, name: str) -> str:
        """One line for the console: what was read, kept and why the rest was dropped."""
        skipped = f"; {plural(self.skipped_lines, 'unreadable line')} skipped" if self.skipped_lines else ""
        return (f"{name}: {plural(self.read, 'set')} read, {len(self.pathways)} kept, {len(self.too_small)} too "
                f"small, {len(self.too_large)} too large (kept: {self.sizes[0]} to {self.sizes[1]} vocabulary "
                f"genes after harmonisation){skipped}; {self.near_duplicates} have a near-duplicate "
                f"(Jaccard >= {self.threshold}) among the training sets")


def describe_problems(problems: Sequence[GmtProblem], shown: int = 5) -> str:
    """The lenient GMT reader's problems as the app's upload reader words them."""
    return "; ".join(f"line {p.line_number}: {p.reason}" if p.line_number else p.reason for p in problems[:shown])


def read_external(path: Path) -> GmtReadResult:
    """The GMT's sets, read leniently; ValueError with the reader's problems when none can be read."""
    result = read_gmt(path, strict=False)
    if not result.gene_sets:
        raise ValueError(f"no gene set could be read from {Path(path).name}: {describe_problems(result.problems)}")
    return result


def load_external(path: Path, resolver: GeneResolver, vocabulary: set[str], train_sets: Sequence[Sequence[str]],
                  min_size: int = MIN_EXTERNAL_SIZE, max_size: int | None = None,
                  threshold: float = 0.5) -> ExternalSets:
    """Read any GMT, harmonise its genes, keep those in the vocabulary and sets of at least ``min_size`` of them
    (and at most ``max_size``: default, half the vocabulary; see MAX_VOCABULARY_SHARE), and count how many kept
    sets have a near-duplicate among the model's training sets.

    Raises ValueError naming the reason when no set can be read or none is left to benchmark.
    """
    name = Path(path).name
    max_size = int(MAX_VOCABULARY_SHARE * len(vocabulary)) if max_size is None else max_size
    result = read_external(path)
    kept, too_small, too_large = [], [], []
    for gene_set in result.gene_sets:
        genes = tuple(g for g in resolver.harmonise(gene_set.genes).symbols if g in vocabulary)
        if len(genes) < min_size:
            too_small.append(gene_set.name)
        elif len(genes) > max_size:
            too_large.append(gene_set.name)
        else:
            kept.append((gene_set.name, genes))
    if not kept:
        raise ValueError(f"no pathway left to benchmark in {name}: {plural(len(result.gene_sets), 'set')} read, "
                         f"{len(too_small)} too small and {len(too_large)} too large (a test set needs {min_size} "
                         f"to {max_size:,} vocabulary genes after harmonisation)")
    best = max_jaccard_to(train_sets, [genes for _, genes in kept])
    return ExternalSets(kept, len(result.gene_sets), too_small, too_large, int((best >= threshold).sum()),
                        threshold, len(result.problems), (min_size, max_size))


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a markdown table, recall and precision in percent."""
    shown = summary.copy()
    for column in ("median_recall", "mean_recall", "median_precision"):
        shown[column] = (100 * shown[column]).map(lambda v: f"{v:.1f}%")
    shown["significant"] = shown.apply(lambda r: f"{int(r['significant'])}/{int(r['pathways'])}", axis=1)
    shown = shown.drop(columns=["pathways"]).rename(columns={
        "significant": "significant (q < 0.05)", "median_recall": "median recall", "mean_recall": "mean recall",
        "median_precision": "median precision", "zero_overlap": "zero overlap", "ms_per_pathway": "ms per pathway"})
    if "ms per pathway" in shown:
        shown["ms per pathway"] = shown["ms per pathway"].map(lambda v: f"{v:.1f}")
    return shown.to_markdown(index=False)
