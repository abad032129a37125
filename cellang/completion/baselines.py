"""Baselines for pathway completion: given a few genes of a pathway, rank the genes most likely
to complete it.

Every completer has the same interface (`Completer`), so the benchmark can run them side by side:
`rank(prompts, n)` returns, for each prompt, its top n[i] genes with scores, best first. Returned
genes come from a fixed gene universe, never include a prompt gene, and never repeat; when n[i]
exceeds the number of available genes (universe minus prompt), all of them are returned.
Prompt genes outside the universe are ignored.

* RandomCompleter: uniform random order (the chance level).
* FrequencyCompleter: the genes in the most training sets (ignores the prompt).
* CooccurrenceCompleter: the genes sharing the most training sets with the prompt genes.
* DAECompleter: a denoising autoencoder over multi-hot sets (models/dae.py, after GSFM).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from cellang import checkpoints
from cellang.completion.loading import load_dae
from cellang.completion.ranking import top_excluding
from cellang.device import pick_device
from cellang.models.dae import SetDAE

Ranking = list[tuple[str, float]]


@runtime_checkable
class Completer(Protocol):
    name: str

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[Ranking]:
        """For each prompt, the top n[i] genes (not in the prompt, no repeats, only universe genes)
        with scores, best first."""
        ...


def _unique_universe(universe: Iterable[str]) -> list[str]:
    """The universe without repeats, in its given order."""
    genes = list(dict.fromkeys(universe))
    if not genes:
        raise ValueError("the gene universe is empty")
    return genes


def _check_request(prompts: Sequence[Sequence[str]], n: Sequence[int]) -> tuple[list[list[str]], list[int]]:
    """(prompts as lists, n as ints), after checking that they match."""
    if isinstance(prompts, str) or any(isinstance(prompt, str) for prompt in prompts):
        raise TypeError("prompts must be a sequence of gene lists, not one gene list")
    prompts = [list(prompt) for prompt in prompts]
    counts = [int(k) for k in n]
    if len(counts) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(counts)} values of n")
    if any(k < 0 for k in counts):
        raise ValueError("n must be non-negative")
    return prompts, counts


def _prompt_columns(prompt: Iterable[str], index: dict[str, int]) -> np.ndarray:
    """Sorted unique universe columns of a prompt's genes (genes outside the universe dropped)."""
    return np.array(sorted({index[g] for g in prompt if g in index}), dtype=np.int64)


def _membership(train_sets: Iterable[Iterable[str]], index: dict[str, int]) -> sp.csr_matrix:
    """Binary (n_sets, n_genes) CSR matrix; genes outside the universe are dropped."""
    indptr, columns = [0], []
    for gene_set in train_sets:
        columns.extend(sorted({index[g] for g in gene_set if g in index}))
        indptr.append(len(columns))
    data = np.ones(len(columns), dtype=np.float64)
    return sp.csr_matrix((data, np.asarray(columns, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
                         shape=(len(indptr) - 1, len(index)))


def _preference(counts: np.ndarray, genes: Sequence[str]) -> np.ndarray:
    """Per column, a distinct rank key: more training sets first, then symbol order (larger = better)."""
    order = sorted(range(len(genes)), key=lambda c: (-counts[c], genes[c]))
    key = np.empty(len(genes), dtype=np.int64)
    key[np.asarray(order, dtype=np.int64)] = np.arange(len(genes) - 1, -1, -1)
    return key


class RandomCompleter:
    """Uniformly random genes: the chance level.

    Deterministic: prompt number i of a `rank` call draws from a generator seeded by (seed, i),
    so the same call always gives the same answer, and a prompt's answer depends on its position
    in the list, not on the other prompts. Scores are all 0.
    """

    name = "random"

    def __init__(self, universe: Sequence[str], seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.genes = _unique_universe(universe)
        self._index = {g: i for i, g in enumerate(self.genes)}
        self.seed = seed

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[Ranking]:
        prompts, counts = _check_request(prompts, n)
        results = []
        for i, (prompt, k) in enumerate(zip(prompts, counts)):
            available = np.setdiff1d(np.arange(len(self.genes)), _prompt_columns(prompt, self._index))
            rng = np.random.default_rng((self.seed, i))
            chosen = available[rng.choice(len(available), size=min(k, len(available)), replace=False)]
            results.append([(self.genes[c], 0.0) for c in chosen.tolist()])
        return results


class FrequencyCompleter:
    """Genes ranked by the number of training sets containing them; ignores the prompt's content.

    Ties are broken by gene symbol, so the order is deterministic. Score = number of sets.
    """

    name = "frequency"

    def __init__(self, train_sets: Iterable[Iterable[str]], universe: Sequence[str]) -> None:
        self.genes = _unique_universe(universe)
        self._index = {g: i for i, g in enumerate(self.genes)}
        counts = np.asarray(_membership(train_sets, self._index).sum(axis=0)).ravel()
        self.counts = counts.astype(np.int64)
        self._preference = _preference(self.counts, self.genes)

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[Ranking]:
        prompts, counts = _check_request(prompts, n)
        return [[(self.genes[c], float(self.counts[c]))
                 for c in top_excluding(self._preference, _prompt_columns(prompt, self._index), k).tolist()]
                for prompt, k in zip(prompts, counts)]


class CooccurrenceCompleter:
    """Genes ranked by how often they share training sets with the prompt genes.

    score(g) = sum over distinct prompt genes p of #(training sets containing both p and g).
    With M the binary (set x gene) membership matrix and P the multi-hot prompts, the scores of a
    batch of prompts are (P M^T) M: one sparse product per batch. Ties are broken by frequency
    (number of training sets), then by symbol. Prompt genes outside the universe are ignored; a
    prompt with none left scores 0 everywhere, which falls back to the frequency order.
    """

    name = "cooccurrence"

    def __init__(
        self, train_sets: Iterable[Iterable[str]], universe: Sequence[str], *, prompt_batch: int = 256
    ) -> None:
        self.genes = _unique_universe(universe)
        self._index = {g: i for i, g in enumerate(self.genes)}
        self.membership = _membership(train_sets, self._index)
        self._membership_t = self.membership.T.tocsr()
        self.prompt_batch = prompt_batch
        self.counts = np.asarray(self.membership.sum(axis=0)).ravel().astype(np.int64)
        self._tiebreak = _preference(self.counts, self.genes)  # among genes with equal co-occurrence score

    def scores(self, prompts: Sequence[Sequence[str]]) -> np.ndarray:
        """Dense (len(prompts), n_genes) co-occurrence scores (prompt genes included)."""
        rows, columns = [], []
        for row, prompt in enumerate(prompts):
            cols = _prompt_columns(prompt, self._index)
            rows.extend([row] * len(cols))
            columns.extend(cols.tolist())
        multi_hot = sp.csr_matrix(
            (np.ones(len(rows)), (np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64))),
            shape=(len(prompts), len(self.genes)),
        )
        return ((multi_hot @ self._membership_t) @ self.membership).toarray()

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[Ranking]:
        prompts, counts = _check_request(prompts, n)
        n_genes = len(self.genes)
        results: list[Ranking] = []
        for start in range(0, len(prompts), self.prompt_batch):
            chunk = prompts[start : start + self.prompt_batch]
            scores = self.scores(chunk)
            # Scores are integer counts, so one int64 key orders by (score, frequency, symbol).
            keys = np.rint(scores).astype(np.int64) * n_genes + self._tiebreak
            for row, prompt in enumerate(chunk):
                top = top_excluding(keys[row], _prompt_columns(prompt, self._index), counts[start + row])
                results.append([(self.genes[c], float(scores[row, c])) for c in top.tolist()])
        return results


class DAECompleter:
    """A trained SetDAE: the multi-hot prompt in, softmax scores over non-prompt genes out.

    Score = probability of the gene under the model's softmax with prompt genes masked out.
    """

    name = "dae"

    def __init__(
        self, model: SetDAE, genes: Sequence[str], device: str | torch.device | None = None, *, prompt_batch: int = 256
    ) -> None:
        self.genes = list(genes)
        if len(set(self.genes)) != len(self.genes):
            raise ValueError("genes must be unique (they are the model's columns)")
        if model.config.n_genes != len(self.genes):
            raise ValueError(f"model has {model.config.n_genes} genes, the gene list {len(self.genes)}")
        self._index = {g: i for i, g in enumerate(self.genes)}
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = model.to(self.device).eval()
        self.prompt_batch = prompt_batch

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> DAECompleter:
        """A completer from a checkpoint written by `dae_training.train_dae`."""
        model, genes, _ = load_dae(checkpoints.require("pathway-dae", directory))
        return cls(model, genes, device)

    @torch.no_grad()
    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[Ranking]:
        prompts, counts = _check_request(prompts, n)
        n_genes = len(self.genes)
        results: list[Ranking] = []
        for start in range(0, len(prompts), self.prompt_batch):
            chunk = prompts[start : start + self.prompt_batch]
            columns = [_prompt_columns(prompt, self._index) for prompt in chunk]
            inputs = torch.zeros(len(chunk), n_genes)
            for row, cols in enumerate(columns):
                inputs[row, torch.from_numpy(cols)] = 1.0
            inputs = inputs.to(self.device)
            logits, _ = self.model(inputs)
            # Rank by log-probabilities: probabilities can underflow to 0 and tie.
            log_probs = torch.log_softmax(logits.float().masked_fill(inputs > 0, float("-inf")), dim=-1)
            probs, log_probs = log_probs.exp().cpu().numpy(), log_probs.cpu().numpy()
            for row, cols in enumerate(columns):
                top = top_excluding(log_probs[row], cols, counts[start + row]).tolist()
                results.append([(self.genes[c], float(probs[row, c])) for c in top])
        return results
