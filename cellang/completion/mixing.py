"""How to combine the retrieval reader and the masked-set transformer, measured on validation only.

`cellang tune completer` picks one share w for the shipped ranking, (1 - w) x the reader's probability + w x the
set model's. This module asks whether a richer rule would do better, without the test files: every validation
source (the corpus's validation pathways and the outside-style files that tuning reads) is cut into two halves
(seeded), each rule is fitted on one half and scored on the other, both ways round, so no rule is scored on the
sets that fitted it. The rules:

- ``mixture``: one share for every prompt and one way for the set model to read a prompt (whole, or mixed with
  each gene alone: tuning's SINGLE_GENE_SHARES), chosen as tuning chooses them (the shipped rule);
- ``share by prompt size``: at that reading, one share for prompts of at most SMALL_PROMPT genes (a complex's one or
  two members, most of a short list) and one for longer prompts;
- ``stacker``: the listwise linear stacker of :mod:`.stacking` over both models' log-probabilities, fitted
  on the half (at the mixture's chosen reading and share).

Each prompt is scored once, over the pool :mod:`.stacking` builds (it holds every gene any mixture ranks first).

:func:`memorisation` measures why the reader cannot simply learn the set model's weight from the corpus: on the sets
it trained on, the set model recalls far more than on sets it never saw.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from cellang.completion import benchmark as bench
from cellang.completion.neighbours import Datastore
from cellang.completion.rerank import RerankCompleter
from cellang.completion.set_model import SetModelCompleter
from cellang.completion.stacking import Mixing, PromptScores, Stacker, fit_stacker, mixture_scores, pooled_scores
from cellang.completion.tuning import SET_MODEL_SHARES, SINGLE_GENE_SHARES, ValidationSource
from cellang.models.reranker import CandidateReranker

SMALL_PROMPT = 2  # genes: a prompt this short is "small" for the share-by-prompt-size rule
RULES = ("mixture", "share by prompt size", "stacker")
CUTS = 4  # cuts into halves each rule is compared on (each scores every set once per cut)


def score_prompts(source: ValidationSource, reader: CandidateReranker, set_model: SetModelCompleter,
                  universe: Sequence[str], batch: int = 256) -> list[PromptScores]:
    """Both models (the set model in each of tuning's readings) on every case of ``source`` (completing from its
    datastore), kept over each prompt's pool, with the hidden members marked."""
    completer = RerankCompleter(Datastore(source.datastore, list(universe)), reader)
    scored = pooled_scores(completer, set_model, SINGLE_GENE_SHARES, [case.prompt for case in source.cases],
                           [len(case.masked) for case in source.cases], batch)
    marked = []
    for case, prompt in zip(source.cases, scored):
        hidden = set(completer.store.columns(case.masked).tolist())
        marked.append(dataclasses.replace(prompt, targets=np.array([c in hidden for c in prompt.columns.tolist()],
                                                                   dtype=bool)))
    return marked


def fraction_significant(cases: Sequence[bench.Case], prompts: Sequence[PromptScores],
                         score: Callable[[PromptScores], np.ndarray], universe: Sequence[str]) -> tuple[int, float]:
    """(pathways significant, mean recall) when each case's ``wanted`` best pool genes by ``score`` are its
    completion (BH within ``cases``)."""
    predicted = []
    for prompt in prompts:
        order = np.argsort(-score(prompt), kind="stable")[: prompt.wanted]
        predicted.append([universe[c] for c in prompt.columns[order].tolist()])
    frame = bench.score(cases, predicted, len(universe), "rule")
    return int(frame.significant.sum()), float(frame.recall.mean())


ScoredSources = dict[str, tuple[list[bench.Case], list[PromptScores]]]


def _mean_fraction(half: ScoredSources, score_of: Callable[[PromptScores], np.ndarray], universe: Sequence[str]
                   ) -> float:
    return float(np.mean([fraction_significant(cases, prompts, score_of, universe)[0] / len(cases)
                          for cases, prompts in half.values()]))


def choose_mixing(half: ScoredSources, universe: Sequence[str], shares: Sequence[float] = SET_MODEL_SHARES) -> Mixing:
    """(reading, share) with the highest mean fraction significant over the sources (the smaller reading, then
    share, on a tie), as tuning chooses them."""
    readings = sorted(next(iter(half.values()))[1][0].set_model)
    pairs = [(s, w) for s in readings for w in shares]
    means = [_mean_fraction(half, lambda p, pair=pair: mixture_scores(p, pair), universe) for pair in pairs]
    return pairs[int(np.argmax(means))]


def choose_shares_by_size(half: ScoredSources, universe: Sequence[str], reading: float,
                          shares: Sequence[float] = SET_MODEL_SHARES) -> tuple[float, float]:
    """At ``reading``: (share for prompts of at most SMALL_PROMPT genes, share for longer ones), chosen together."""
    pairs = list(itertools.product(shares, shares))
    means = [_mean_fraction(half, lambda p, pair=pair: mixture_scores(p, (reading, _share_for(p, pair))), universe)
             for pair in pairs]
    return pairs[int(np.argmax(means))]


def _share_for(prompt: PromptScores, pair: tuple[float, float]) -> float:
    return pair[0] if prompt.prompt_size <= SMALL_PROMPT else pair[1]


def halves(n: int, seed: int, cut: int = 0) -> np.ndarray:
    """0 or 1 for each of ``n`` sets: a seeded, balanced cut in two (``cut`` draws another)."""
    return np.random.default_rng((seed, 11, cut)).permutation(n) % 2


def source_weights(sources: ScoredSources) -> list[float]:
    """1 / (the source's sets) for each prompt of ``sources`` in order: every source counts once, as tuning counts."""
    return [1.0 / len(prompts) for _, prompts in sources.values() for _ in prompts]


def fit_on(sources: ScoredSources, mixing: Mixing) -> Stacker:
    """The stacker fitted on every prompt of ``sources`` (each source counting once) at ``mixing``."""
    return fit_stacker([p for _, prompts in sources.values() for p in prompts], source_weights(sources), mixing)


def compare_rules(scored: ScoredSources, universe: Sequence[str], seed: int = 0, rules: Sequence[str] = RULES,
                  cuts: int = CUTS) -> tuple[pd.DataFrame, list[dict]]:
    """Fit each of ``rules`` on one half of every source and score it on the other, both ways round, for each of
    ``cuts`` cuts into halves (one cut's count moves by a few sets with the cut: more cuts, less noise).

    Returns (one row per rule, scored half and source: pathways, significant, mean recall; the fitted settings
    of each rule per fitting half)."""
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"no rule {', '.join(sorted(unknown))}; the rules are {', '.join(RULES)}")
    rows, fitted = [], []
    for cut_number, fitted_half in itertools.product(range(cuts), (0, 1)):
        cut = {name: halves(len(cases), seed, cut_number) for name, (cases, _) in scored.items()}
        fitting, scoring = ({name: ([cases[i] for i in np.flatnonzero(cut[name] == which)],
                                    [prompts[i] for i in np.flatnonzero(cut[name] == which)])
                             for name, (cases, prompts) in scored.items()} for which in (fitted_half, 1 - fitted_half))
        chosen = choose_mixing(fitting, universe)
        settings: dict = {"cut": cut_number, "fitted_on_half": fitted_half, "single_gene_share": chosen[0],
                          "mixture_share": chosen[1]}
        score_by: dict[str, Callable[[PromptScores], np.ndarray]] = {"mixture": lambda p: mixture_scores(p, chosen)}
        if "share by prompt size" in rules:
            pair = choose_shares_by_size(fitting, universe, chosen[0])
            settings.update(share_small_prompts=pair[0], share_longer_prompts=pair[1])
            score_by["share by prompt size"] = lambda p: mixture_scores(p, (chosen[0], _share_for(p, pair)))
        if "stacker" in rules:
            stacker = fit_on(fitting, chosen)
            settings["stacker_weights"] = [round(float(w), 4) for w in stacker.weights]
            score_by["stacker"] = stacker.scores
        fitted.append(settings)
        for rule in (r for r in RULES if r in rules):
            for source, (cases, prompts) in scoring.items():
                significant, recall = fraction_significant(cases, prompts, score_by[rule], universe)
                rows.append({"rule": rule, "cut": cut_number, "scored_half": 1 - fitted_half, "source": source,
                             "pathways": len(cases), "significant": significant, "mean_recall": recall})
    return pd.DataFrame(rows), fitted


def summarise_rules(rows: pd.DataFrame) -> pd.DataFrame:
    """Per rule: the significant sets per source, summed over both scored halves and every cut, and the mean over
    sources of the fraction significant (each source counts once, as tuning counts it)."""
    per_source = rows.groupby(["rule", "source"], sort=False)[["pathways", "significant"]].sum().reset_index()
    per_source["fraction"] = per_source.significant / per_source.pathways
    table = per_source.pivot(index="rule", columns="source", values="significant")
    table["mean fraction significant"] = per_source.groupby("rule")["fraction"].mean()
    return table.reindex([r for r in RULES if r in table.index]).reset_index()


def memorisation(set_model: SetModelCompleter, seen: Sequence[tuple[str, Sequence[str]]],
                 unseen: Sequence[tuple[str, Sequence[str]]], universe_size: int, mask_ratio: float,
                 seed: int) -> pd.DataFrame:
    """The set model alone on sets it trained on (``seen``) and sets it did not (``unseen``), same masking."""
    rows = []
    for label, pathways in (("sets it trained on", seen), ("its validation pathways", unseen)):
        cases = bench.make_cases(pathways, mask_ratio, seed)
        ranked = set_model.rank([c.prompt for c in cases], [len(c.masked) for c in cases])
        frame = bench.score(cases, [[g for g, _ in r] for r in ranked], universe_size, label)
        rows.append({"sets": label, "pathways": len(cases), "significant": int(frame.significant.sum()),
                     "mean_recall": float(frame.recall.mean()), "median_recall": float(frame.recall.median())})
    return pd.DataFrame(rows)


def choose_stacker(sources: Sequence[ValidationSource], reader: CandidateReranker, set_model: SetModelCompleter,
                   universe: Sequence[str], mixing: Mixing, seed: int) -> dict:
    """`cellang tune completer`'s last step: the stacker against the mixture on halves of ``sources`` they were not
    fitted on (CUTS cuts); when the stacker's mean fraction significant is higher, it is fitted on every set at
    ``mixing`` (the reading and share tuning chose).
    Returns {"stacker": its JSON or None, "stacker_validation": the comparison}."""
    scored = {source.name: (source.cases, score_prompts(source, reader, set_model, universe)) for source in sources}
    rows, fitted = compare_rules(scored, universe, seed, rules=("mixture", "stacker"))
    summary = summarise_rules(rows).set_index("rule")["mean fraction significant"]
    keep = bool(summary["stacker"] > summary["mixture"])
    return {"stacker": fit_on(scored, mixing).to_json() if keep else None,
            "stacker_validation": {"seed": seed, "mean_fraction_significant": {r: float(v) for r, v in summary.items()},
                                   "per_half": rows.to_dict(orient="records"), "fitted": fitted,
                                   "chosen": "stacker" if keep else "mixture"}}
