"""Completion by reading the neighbours: retrieval finds candidates, a trained reader ranks them.

``RerankCompleter`` holds a :class:`~cellang_core.completion.neighbours.Datastore` (the training sets)
and a :class:`~cellang_core.models.reranker.CandidateReranker`; for a prompt it builds the candidates
and their features, scores them, and returns the best. When the candidates run out (a prompt that few
sets touch), the rest of the ranking follows gene frequency in the datastore.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cellang_core import checkpoints
from cellang_core.completion.neighbours import FEATURES, CandidateFeatures, Datastore
from cellang_core.models.reranker import CandidateReranker, RerankerConfig

MODEL_NAME = "pathway-rerank"


def load_reranker(directory: str | Path) -> tuple[CandidateReranker, dict]:
    """(reader in eval mode on CPU, training record); refuses a checkpoint built on other features."""
    model, _, vocabulary_json, record = checkpoints.load_checkpoint(
        directory, lambda config: CandidateReranker(RerankerConfig(**config)))
    assert isinstance(model, CandidateReranker)
    with checkpoints.reading(directory):
        if list(vocabulary_json["features"]) != list(FEATURES):
            raise ValueError(f"{Path(directory).name}/ was trained on other retrieval features; retrain it with "
                             "`python scripts/train.py pathway-rerank`")
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

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[list[tuple[str, float]]]:
        results = []
        universe = self.store.universe
        for prompt, count in zip(prompts, n):
            columns = self.store.columns(prompt)
            found = self.store.features(columns)
            scores = self.score(found)
            best = np.argsort(-scores, kind="stable")[: int(count)]
            chosen = [(universe[found.columns[i]], float(scores[i])) for i in best]
            if len(chosen) < count:  # too few candidates: continue with the most frequent genes
                taken = set(columns.tolist()) | set(found.columns.tolist())
                extra = [c for c in self._by_frequency[: int(count) + len(taken)] if c not in taken]
                chosen += [(universe[c], float("-inf")) for c in extra[: int(count) - len(chosen)]]
            results.append(chosen)
        return results
