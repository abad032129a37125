"""The retrieval reader's fair baseline: gradient-boosted trees on the same candidate features.

``train_gbm_reader`` draws the same leave-group-out examples as the reader's training
(completion/rerank_training.py: same rows for the same seed, same features) and fits scikit-learn's
histogram gradient boosting to tell held-out members from the other candidates; the completer ranks
candidates by its log-odds exactly as the reader ranks by its scores. It is trained in the benchmark
run (about two minutes on a CPU), never shipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from cellang.completion.neighbours import CandidateFeatures, Datastore
from cellang.completion.rerank import RerankCompleter
from cellang.completion.rerank_training import N_EXAMPLES, example_rows, make_examples
from cellang.progress import Progress

BOOSTING = {"max_iter": 300, "learning_rate": 0.1, "max_leaf_nodes": 31, "early_stopping": True,
            "validation_fraction": 0.05, "n_iter_no_change": 20}


class GradientBoostedReader(RerankCompleter):
    name = "gbm-reader"

    def __init__(self, store: Datastore, model: HistGradientBoostingClassifier) -> None:
        self.store, self.model = store, model
        self._by_frequency = np.argsort(-store.frequency, kind="stable")

    def score(self, found: CandidateFeatures) -> np.ndarray:
        if not len(found.columns):
            return np.zeros(0, dtype=np.float32)
        return self.model.decision_function(found.values).astype(np.float32)


def train_gbm_reader(train_store: Datastore, *, seed: int, n_examples: int = N_EXAMPLES,
                     exclude_rows: Sequence[int] = (), rank_store: Datastore | None = None,
                     progress: Progress | None = None) -> GradientBoostedReader:
    """Fit on leave-group-out examples of ``train_store`` (never ``exclude_rows``); rank from ``rank_store``
    (default: the same datastore)."""
    examples = make_examples(train_store, example_rows(train_store, n_examples, exclude_rows, seed), seed=seed,
                             progress=progress)
    features = np.vstack([e.features for e in examples])
    targets = np.concatenate([e.targets for e in examples])
    model = HistGradientBoostingClassifier(random_state=seed, **BOOSTING).fit(features, targets)
    return GradientBoostedReader(rank_store or train_store, model)
