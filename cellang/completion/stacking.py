"""The stacker: a listwise linear ranker over what the retrieval reader and the masked-set transformer say.

The shipped ranking mixes the two models with one share, (1 - w) x reader + w x set model. The stacker reads more
of both per candidate gene: the log of that mixture, the reader's log-probability, the set model's in each way it
reads a prompt (whole, or mixed with each gene alone), and how these should weigh as the prompt grows and as one
neighbouring set holds more of it (the reader's best containment). Its weights are fitted on validation sources
only (`cellang tune completer`, which keeps it only when it beats the mixture on halves it was not fitted on; the
study is `cellang benchmark mixing`), by the reader's own listwise loss.

Candidates form a pool per prompt: the reader's candidates and each reading's best max(POOL_FLOOR, n) genes. A gene
outside the pool has no reader probability and a lower probability in each reading than that reading's pooled
genes, so no mixture of the two ranks it above them.

In:  prompts and how many genes each asks for; the reader (over its datastore) and the set model.
Out: :class:`PromptScores` per prompt; a :class:`Stacker` scores a pool, higher first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cellang.completion.neighbours import FEATURES
from cellang.completion.rerank import RerankCompleter, mixture, set_model_probabilities
from cellang.completion.set_model import SetModelCompleter

POOL_FLOOR = 200  # the set model's best genes pooled per prompt and reading (more when more are asked for)
STACKER_L2 = 1e-3
EPSILON = 1e-9  # added before a log: a probability of 0 (a gene off the reader's candidates) stays finite
CONTAINMENT = FEATURES.index("best_containment")

Mixing = tuple[float, float]  # (the reading's single-gene share, the set model's share in the mixture)


@dataclass(frozen=True)
class PromptScores:
    """One prompt, scored by both models over its pool of genes (universe columns)."""

    columns: np.ndarray
    reader: np.ndarray
    set_model: dict[float, np.ndarray]  # per reading (its single-gene share), the set model's probabilities
    containment: np.ndarray  # the best containment of a neighbour holding the gene; 0 off the reader's candidates
    prompt_size: int
    wanted: int  # genes asked for (the hidden members, in a benchmark)
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # bool per pool gene: hidden member


def pooled_scores(reader: RerankCompleter, set_model: SetModelCompleter, readings: Sequence[float],
                  prompts: Sequence[Sequence[str]], wanted: Sequence[int], batch: int = 256) -> list[PromptScores]:
    """Both models on every prompt (the set model in each of ``readings``), kept over each prompt's pool."""
    universe = reader.store.universe
    models = {float(s): set_model.reading(s) for s in readings}
    scored = []
    for start in range(0, len(prompts), batch):
        block = list(prompts[start : start + batch])
        by_reading = {s: set_model_probabilities(model, universe, block) for s, model in models.items()}
        for row, (prompt_genes, count) in enumerate(zip(block, wanted[start : start + batch])):
            prompt = reader.store.columns(prompt_genes)
            found = reader.store.features(prompt)
            pool = found.columns
            for probabilities in by_reading.values():
                probabilities[row, prompt] = 0.0
                best = np.argsort(-probabilities[row], kind="stable")
                pool = np.union1d(pool, best[~np.isin(best, prompt)][: max(POOL_FLOOR, int(count))])
            reader_row = np.zeros(len(universe))
            containment = np.zeros(len(universe))
            if len(found.columns):
                reader_row[found.columns] = reader.read(found)
                containment[found.columns] = found.values[:, CONTAINMENT]
            scored.append(PromptScores(pool, reader_row[pool], {s: p[row, pool] for s, p in by_reading.items()},
                                       containment[pool], len(prompt), int(count)))
    return scored


def mixture_scores(prompt: PromptScores, mixing: Mixing) -> np.ndarray:
    """(1 - share) x the reader's probability + share x the set model's in the reading ``mixing`` names."""
    reading, share = mixing
    return mixture(prompt.reader, prompt.set_model[reading], share)


def stacker_features(prompt: PromptScores, mixing: Mixing) -> np.ndarray:
    """(pool, 3 + 3 x readings): log of the ``mixing`` mixture, log reader, log reader x the reader's containment,
    and per reading (in order) its log-probability, that x log prompt size and that x containment."""
    log_reader = np.log(prompt.reader + EPSILON)
    columns = [np.log(mixture_scores(prompt, mixing) + EPSILON), log_reader, log_reader * prompt.containment]
    size = np.log(max(prompt.prompt_size, 1))
    for reading in sorted(prompt.set_model):
        log_set = np.log(prompt.set_model[reading] + EPSILON)
        columns += [log_set, log_set * size, log_set * prompt.containment]
    return np.column_stack(columns).astype(np.float32)


@dataclass(frozen=True)
class Stacker:
    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    mixing: Mixing
    readings: tuple[float, ...]

    def scores(self, prompt: PromptScores) -> np.ndarray:
        """The stacker's score of each pool gene (higher ranks first)."""
        if tuple(sorted(prompt.set_model)) != self.readings:
            raise ValueError(f"the stacker reads the set model at single-gene shares {self.readings}, the prompt was "
                             f"scored at {tuple(sorted(prompt.set_model))}")
        return ((stacker_features(prompt, self.mixing) - self.mean) / self.std) @ self.weights

    def to_json(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "single_gene_share": self.mixing[0], "share": self.mixing[1], "readings": list(self.readings)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stacker:
        readings = tuple(float(s) for s in data["readings"])
        arrays = [np.asarray(data[key], dtype=np.float32) for key in ("weights", "mean", "std")]
        if len({len(a) for a in arrays}) != 1 or len(arrays[0]) != 3 + 3 * len(readings):
            raise ValueError(f"a stacker over {len(readings)} readings needs {3 + 3 * len(readings)} weights, means "
                             f"and deviations; got {[len(a) for a in arrays]}")
        mixing = (float(data["single_gene_share"]), float(data["share"]))
        if mixing[0] not in readings:
            raise ValueError(f"the stacker's mixture reads at {mixing[0]}, not one of its readings {readings}")
        return cls(*arrays, mixing, readings)


def fit_stacker(prompts: Sequence[PromptScores], prompt_weights: Sequence[float], mixing: Mixing,
                l2: float = STACKER_L2) -> Stacker:
    """Minimise the weighted mean over prompts of -mean log softmax(scores) over the hidden pool genes (the
    reader's own loss), + ``l2`` on every weight but the mixture's; it starts as the mixture. Deterministic."""
    features = [torch.from_numpy(stacker_features(p, mixing)) for p in prompts]
    targets = [torch.from_numpy(p.targets) for p in prompts]
    stacked = torch.cat(features)
    mean, std = stacked.mean(0), stacked.std(0).clamp(min=1e-6)
    weights = torch.zeros(stacked.shape[1], dtype=torch.float32)
    weights[0] = 1.0
    weights.requires_grad_(True)
    used = [(f, t, float(a)) for f, t, a in zip(features, targets, prompt_weights) if t.any()]
    total = max(sum(a for _, _, a in used), 1e-12)
    optimiser = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

    def loss_of() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.zeros(())
        for f, t, a in used:
            loss = loss - a * torch.log_softmax(((f - mean) / std) @ weights, 0)[t].mean()
        loss = loss / total + l2 * (weights[1:] ** 2).sum()
        loss.backward()
        return loss

    if used:
        optimiser.step(loss_of)
    readings = tuple(sorted(float(s) for s in prompts[0].set_model)) if prompts else (mixing[0],)
    return Stacker(weights.detach().numpy(), mean.numpy(), std.numpy(), mixing, readings)


def stacked_rank(reader: RerankCompleter, set_model: SetModelCompleter, stacker: Stacker,
                 prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[list[tuple[str, float]]]:
    """Top ``n[i]`` genes per prompt by the stacker, each with its probability (a softmax of the stacker's scores
    over the pool)."""
    universe, results = reader.store.universe, []
    for prompt, count in zip(pooled_scores(reader, set_model, stacker.readings, prompts, n), n):
        scores = stacker.scores(prompt).astype(np.float64)
        order = np.argsort(-scores, kind="stable")[: int(count)]
        probabilities = RerankCompleter.softmax(scores)
        results.append([(universe[prompt.columns[i]], float(probabilities[i])) for i in order.tolist()])
    return results
