"""Why a gene was suggested: the training sets that support it, and the model's share of its score.

In:  a prompt, the predicted genes with their scores, set retrieval over the training sets (with set
     names) and ``retrieval_weight``, the weight the ranking gave retrieval's probability.
Out: one :class:`GeneEvidence` per predicted gene:

* ``from_retrieval`` = retrieval_weight x retrieval's probability of the gene, split over every training
  set that holds the gene and shares a gene with the prompt, in proportion to the set's vote
  |prompt ∩ S|^power / |S|^alpha (the rule of :mod:`~cellang.completion.retrieval`);
* ``from_model`` = score - from_retrieval: what the model added to (or took from) retrieval's share.

The set contributions and ``from_model`` add up to the score. A ranking that mixes retrieval in with
weight w has retrieval_weight w; the retrieval reader has 1 (its score is retrieval's, moved by what it
read); the language model alone has 0 (the sets are then shown for context, contributing nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cellang.completion.retrieval import SetRetrievalCompleter

SETS_SHOWN = 5  # supporting sets named in a prediction's row (every set is in the evidence table)


@dataclass(frozen=True)
class SupportingSet:
    name: str
    overlap: int  # prompt genes in the set
    size: int
    contribution: float  # the set's part of the gene's score
    description: str = ""  # what the set is about ("" when the datastore has no descriptions)

    def label(self) -> str:
        """Its id and, when it says more, its description: 'GO:0006096 glycolytic process'."""
        return f"{self.name} {self.description}" if self.description and self.description != self.name else self.name


@dataclass(frozen=True)
class GeneEvidence:
    gene: str
    score: float
    from_retrieval: float
    from_model: float
    sets: tuple[SupportingSet, ...]  # largest contribution first

    def rows(self, top: int | None = None) -> list[dict[str, object]]:
        """Long-format evidence: the ``top`` sets (all when None), one row for the other sets together,
        and the model's row; the ``contribution`` column adds up to the score."""
        shown = self.sets if top is None else self.sets[:top]
        rows: list[dict[str, object]] = [
            {"gene": self.gene, "source": "training set", "set": s.name, "overlap": s.overlap, "size": s.size,
             "contribution": s.contribution} for s in shown]
        rest = self.sets[len(shown):]
        if rest:
            rows.append({"gene": self.gene, "source": f"{len(rest)} other training sets", "set": "",
                         "overlap": None, "size": None, "contribution": sum(s.contribution for s in rest)})
        rows.append({"gene": self.gene, "source": "model", "set": "", "overlap": None, "size": None,
                     "contribution": self.from_model})
        return rows

    def summary(self, top: int = SETS_SHOWN) -> str:
        """'NAME description (overlap/size); ...' of the best supporting sets, for a table cell."""
        named = "; ".join(f"{s.label()} ({s.overlap}/{s.size})" for s in self.sets[:top])
        more = len(self.sets) - top
        return named + (f"; and {more} more" if more > 0 else "")


def explain(retrieval: SetRetrievalCompleter, prompt: Sequence[str], predictions: Sequence[tuple[str, float]],
            retrieval_weight: float) -> list[GeneEvidence]:
    """Evidence for each (gene, score) of ``predictions``, in their order (see the module docstring)."""
    if not 0.0 <= retrieval_weight <= 1.0:
        raise ValueError(f"retrieval weight must be in [0, 1], got {retrieval_weight}")
    genes = [gene for gene, _ in predictions]
    evidence = []
    for (gene, score), support in zip(predictions, retrieval.support(prompt, genes)):
        sets = tuple(SupportingSet(retrieval.names[row], overlap, int(retrieval.set_sizes[row]),
                                   retrieval_weight * share, retrieval.descriptions[row])
                     for row, overlap, share in support)
        from_retrieval = sum(s.contribution for s in sets)
        # a finite score only: a completer's fallback genes may carry -inf (nothing supports them)
        score = float(score) if score == score and abs(score) != float("inf") else 0.0
        evidence.append(GeneEvidence(gene, score, from_retrieval, score - from_retrieval, sets))
    return evidence
