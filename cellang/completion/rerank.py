"""Completion by reading the neighbours: retrieval finds candidates, a trained reader ranks them.

``RerankCompleter`` holds a :class:`~cellang.completion.neighbours.Datastore` (the training sets)
and a :class:`~cellang.models.reranker.CandidateReranker`; for a prompt it builds the candidates
and their features, scores them, and returns the best. When the candidates run out (a prompt that few
sets touch), the rest of the ranking follows gene frequency in the datastore.

``ReaderCompleter`` is the shipped completer built on it; with a masked-set transformer and a share
``w`` (chosen on validation by `cellang tune completer`), its ranking is (1 - w) x the reader's
probability + w x the set model's: the reader knows what the neighbouring sets say, the model what it
learnt over every set, which is what an unfamiliar kind of gene set needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cellang import checkpoints
from cellang.completion.completer import (
    BEST_ON_VALIDATION,
    SET_RETRIEVAL_ONLY,
    PathwayCompleter,
    RetrievalAugmentedCompleter,
)
from cellang.completion.neighbours import FEATURES, CandidateFeatures, Datastore
from cellang.completion.ranking import top_excluding
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.completion.set_model import SetModelCompleter
from cellang.models.gpt import GPT
from cellang.models.reranker import CandidateReranker, RerankerConfig
from cellang.tokenizers.pathway import PathwayVocabulary

if TYPE_CHECKING:
    from cellang.completion.stacking import Stacker

MODEL_NAME = "pathway-rerank"


def load_reranker(directory: str | Path) -> tuple[CandidateReranker, dict]:
    """(reader in eval mode on CPU, training record); refuses a checkpoint built on other features."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: CandidateReranker(RerankerConfig(**config)))
    assert isinstance(model, CandidateReranker)
    with checkpoints.reading(directory):
        if list(vocabulary_json["features"]) != list(FEATURES):
            raise ValueError(f"{Path(directory).name}/ was trained on other retrieval features; retrain it with "
                             "`cellang train pathway-rerank`")
        return model, record


class RerankCompleter:
    name = "retrieval-reader"

    def __init__(self, store: Datastore, model: CandidateReranker) -> None:
        self.store, self.model = store, model.eval()
        self._by_frequency = np.argsort(-store.frequency, kind="stable")

    @classmethod
    def load(cls, directory: str | Path, train_sets: Sequence[Sequence[str]], universe: Sequence[str]
             ) -> RerankCompleter:
        model, _ = load_reranker(checkpoints.require(MODEL_NAME, directory))
        return cls(Datastore(train_sets, universe), model)

    @torch.no_grad()
    def score(self, found: CandidateFeatures) -> np.ndarray:
        """The reader's score of each candidate (higher is better)."""
        if not len(found.columns):
            return np.zeros(0, dtype=np.float32)
        features = torch.from_numpy(found.values)[None]
        keep = torch.ones(1, len(found.columns), dtype=torch.bool)
        scores, _ = self.model(features, keep)
        return scores[0].numpy()

    def read(self, found: CandidateFeatures) -> np.ndarray:
        """The reader's probability of each of ``found``'s candidates (float64; a softmax of their scores)."""
        return self.softmax(self.score(found).astype(np.float64))

    @staticmethod
    def softmax(scores: np.ndarray) -> np.ndarray:
        """The reader's probability over one prompt's candidates from their scores (in the scores' precision)."""
        if not len(scores):
            return scores
        weights = np.exp(scores - scores.max())
        return weights / weights.sum()

    def probabilities(self, prompts: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(prompts), universe) the reader's probability: a softmax over each prompt's candidates, 0 for
        every other gene (all 0 when no set shares a gene with the prompt)."""
        out = np.zeros((len(prompts), len(self.store.universe)), dtype=np.float64)
        for row, prompt in enumerate(prompts):
            found = self.store.features(self.store.columns(prompt))
            out[row, found.columns] = self.read(found)
        return out

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int], seed: int = 0) -> list[list[tuple[str, float]]]:
        """Top ``n[i]`` genes per prompt with the reader's probability (a softmax over the candidates);
        ``seed`` is unused (the reader is deterministic), accepted as every completer's ``rank`` takes it."""
        results = []
        universe = self.store.universe
        for prompt, count in zip(prompts, n):
            columns = self.store.columns(prompt)
            found = self.store.features(columns)
            scores = self.score(found)
            best = np.argsort(-scores, kind="stable")[: int(count)]
            probabilities = self.softmax(scores)
            chosen = [(universe[found.columns[i]], float(probabilities[i])) for i in best]
            if len(chosen) < count:
                # Too few candidates (a large set asks for more genes than the reader's candidates): continue in set
                # retrieval's order, then with the most frequent genes, probability 0.
                taken = set(columns.tolist()) | set(found.columns.tolist())
                more = np.concatenate((self.store.retrieval_order(columns), self._by_frequency))
                extra = [c for c in dict.fromkeys(more.tolist()) if c not in taken][: int(count) - len(chosen)]
                chosen += [(universe[c], 0.0) for c in extra]
            results.append(chosen)
        return results


def set_model_probabilities(set_model: SetModelCompleter, universe: Sequence[str],
                            prompts: Sequence[Sequence[str]]) -> np.ndarray:
    """(len(prompts), len(universe)) the set model's probabilities in ``universe``'s order, 0 for a gene it does
    not know (the reader's universe is the GPT's vocabulary, which can differ from the set model's)."""
    columns = np.array([set_model.index.get(gene, -1) for gene in universe], dtype=np.int64)
    known = columns >= 0
    out = np.zeros((len(prompts), len(universe)), dtype=np.float64)
    out[:, known] = set_model.probabilities(prompts)[:, columns[known]]
    return out


def mixture(reader_probabilities: np.ndarray, set_model_probabilities: np.ndarray, share: float) -> np.ndarray:
    """The shipped ranking's score: (1 - share) x the reader's probability + share x the set model's."""
    return (1.0 - share) * reader_probabilities + share * set_model_probabilities


def mixed_rank(reader: RerankCompleter, set_model: SetModelCompleter, share: float, prompts: Sequence[Sequence[str]],
               n: Sequence[int], batch: int = 256) -> list[list[tuple[str, float]]]:
    """Top ``n[i]`` genes per prompt by (1 - share) x the reader's probability + share x the set model's."""
    universe, results = reader.store.universe, []
    for start in range(0, len(prompts), batch):
        block = prompts[start : start + batch]
        mixed = mixture(reader.probabilities(block), set_model_probabilities(set_model, universe, block), share)
        for row, prompt, count in zip(mixed, block, n[start : start + batch]):
            top = top_excluding(row, reader.store.columns(prompt), int(count))
            results.append([(universe[c], float(row[c])) for c in top.tolist()])
    return results


class ReaderCompleter(RetrievalAugmentedCompleter):
    """The shipped completer when validation chose the reader: ranked completions come from the reader of
    what set retrieval finds, mixed with the masked-set transformer when validation gave it a share;
    sampling and the "language model only" ranking use the GPT, and set retrieval alone is offered as a
    ranking too. Evidence: retrieval's probability (times the reader's share) split over the sets, the rest
    as the models' share (see completion/evidence.py)."""

    name = "retrieval-reader"

    def __init__(self, model: GPT, vocabulary: PathwayVocabulary, retrieval: SetRetrievalCompleter,
                 reader: RerankCompleter, validation: dict | None = None, *,
                 set_model: SetModelCompleter | None = None, set_model_share: float = 0.0,
                 stacker: Stacker | None = None, **kwargs: object) -> None:
        super().__init__(model, vocabulary, retrieval, 1.0, **kwargs)
        if list(reader.store.universe) != list(vocabulary.genes):
            raise ValueError("the reader's datastore and the model must share one gene universe")
        if not 0.0 <= set_model_share <= 1.0 or ((set_model_share > 0 or stacker is not None) and set_model is None):
            raise ValueError(f"the set model's share must be in [0, 1], and it and a stacker need a set model; got "
                             f"share {set_model_share}")
        self.reader = reader
        self.validation = validation or {}
        self.set_model, self.set_model_share, self.stacker = set_model, float(set_model_share), stacker
        self.retrieval_weight = 1.0 - self.set_model_share
        if self.set_model_share > 0:
            self.name = f"retrieval-reader+set-model ({self.set_model_share:g})"
        if stacker is not None:
            self.name = "retrieval-reader+set-model (stacked)"

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int], seed: int = 0) -> list[list[tuple[str, float]]]:
        if self.stacker is not None:  # the constructor made sure a set model came with it
            from cellang.completion.stacking import stacked_rank

            return stacked_rank(self.reader, self.set_model, self.stacker, list(prompts), list(n))
        if self.set_model is None or self.set_model_share == 0:
            return self.reader.rank(prompts, n)
        return mixed_rank(self.reader, self.set_model, self.set_model_share, list(prompts), list(n))

    def retrieval_only(self) -> RetrievalAugmentedCompleter:
        return RetrievalAugmentedCompleter(self.model, self.vocabulary, self.retrieval, 1.0, window=self.window,
                                           n_orders=self.n_orders, device=self.device, batch_size=self.batch_size)

    def rankings(self) -> dict[str, PathwayCompleter]:
        return {BEST_ON_VALIDATION: self, SET_RETRIEVAL_ONLY: self.retrieval_only(), **self.model_only().rankings()}

    def describe(self) -> str:
        measured = ""
        if {"reader", "retrieval"} <= set(self.validation):
            reader, retrieval = self.validation["reader"], self.validation["retrieval"]
            measured = (f" (on {reader['pathways']} validation pathways: {reader['significant']} significant, median "
                        f"recall {reader['median_recall']:.1%}, against {retrieval['significant']} and "
                        f"{retrieval['median_recall']:.1%} for retrieval alone)")
        mixed = ""
        if self.set_model_share > 0:
            mixed = (f" Its probabilities are mixed with the masked-set transformer's ({self.set_model_share:g} on the "
                     "model, chosen on validation pathways and outside-style validation files), which helps most on "
                     "kinds of gene sets the training sets do not hold.")
        if self.stacker is not None:
            mixed += (" A stacker fitted on those validation files weighs the two models per gene (how long the list "
                      "is, how much of it one training set holds); it beat the plain mixture on validation sets it "
                      "was not fitted on.")
        return ("Ranked completions come from the retrieval reader: set retrieval over the training sets finds "
                "candidate genes and a small trained transformer re-ranks them from what the neighbouring sets "
                f"say. On validation pathways it beat retrieval alone{measured}; see the README's benchmark.{mixed}")
