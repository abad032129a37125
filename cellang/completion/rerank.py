"""Completion by reading the neighbours: retrieval finds candidates, a trained reader ranks them.

``RerankCompleter`` holds a :class:`~cellang.completion.neighbours.Datastore` (the training sets)
and a :class:`~cellang.models.reranker.CandidateReranker`; for a prompt it builds the candidates
and their features, scores them, and returns the best. When the candidates run out (a prompt that few
sets touch), the rest of the ranking follows gene frequency in the datastore.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.models.gpt import GPT
from cellang.models.reranker import CandidateReranker, RerankerConfig
from cellang.tokenizers.pathway import PathwayVocabulary

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
            probabilities = np.exp(scores - scores.max()) if len(scores) else scores
            probabilities = probabilities / probabilities.sum() if len(scores) else probabilities
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


class ReaderCompleter(RetrievalAugmentedCompleter):
    """The shipped completer when validation chose the reader: ranked completions come from the reader of
    what set retrieval finds; sampling and the "language model only" ranking use the GPT, and set
    retrieval alone is offered as a ranking too. Evidence: retrieval's probability split over the sets,
    the reader's adjustment as the model's share (see completion/evidence.py)."""

    name = "retrieval-reader"

    def __init__(self, model: GPT, vocabulary: PathwayVocabulary, retrieval: SetRetrievalCompleter,
                 reader: RerankCompleter, validation: dict | None = None, **kwargs: object) -> None:
        super().__init__(model, vocabulary, retrieval, 1.0, **kwargs)
        if list(reader.store.universe) != list(vocabulary.genes):
            raise ValueError("the reader's datastore and the model must share one gene universe")
        self.reader = reader
        self.validation = validation or {}

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int], seed: int = 0) -> list[list[tuple[str, float]]]:
        return self.reader.rank(prompts, n)

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
        return ("Ranked completions come from the retrieval reader: set retrieval over the training sets finds "
                "candidate genes and a small trained transformer re-ranks them from what the neighbouring sets "
                f"say. On validation pathways it beat retrieval alone{measured}; see the README's benchmark.")
