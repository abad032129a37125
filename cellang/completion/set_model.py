"""The masked-set transformer as a completer: a prompt in, a probability for every other gene out.

``SetModelCompleter.load(folder)`` reads a checkpoint of `cellang train` pathway-set`;
``probabilities`` gives the (prompts x genes) softmax with prompt genes masked out, ``rank`` the top
genes in the benchmark's interface. A prompt longer than the model reads is subsampled with a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cellang import checkpoints
from cellang.completion.loading import load_set_model
from cellang.completion.ranking import top_excluding
from cellang.device import pick_device
from cellang.models.set_transformer import SetTransformer, prompt_tokens

MODEL_NAME = "pathway-set"


class SetModelCompleter:
    name = "set-transformer"

    def __init__(self, model: SetTransformer, genes: Sequence[str], device: str | torch.device | None = None, *,
                 batch_size: int = 128, seed: int = 0) -> None:
        self.genes = list(genes)
        if model.config.n_genes != len(self.genes):
            raise ValueError(f"model has {model.config.n_genes} genes, the gene list {len(self.genes)}")
        self.index = {g: i for i, g in enumerate(self.genes)}
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size, self.seed = batch_size, seed

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> SetModelCompleter:
        model, genes, _ = load_set_model(checkpoints.require(MODEL_NAME, directory))
        return cls(model, genes, device)

    def _columns(self, prompt: Sequence[str], rng: np.random.Generator) -> np.ndarray:
        columns = np.array(sorted({self.index[g] for g in prompt if g in self.index}), dtype=np.int64)
        limit = self.model.config.max_prompt
        return np.sort(rng.choice(columns, size=limit, replace=False)) if len(columns) > limit else columns

    @torch.no_grad()
    def log_probabilities(self, prompts: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(prompts), n_genes) log-probabilities; prompt genes get -inf."""
        out = np.empty((len(prompts), len(self.genes)), dtype=np.float32)
        rng = np.random.default_rng(self.seed)
        for start in range(0, len(prompts), self.batch_size):
            block = prompts[start : start + self.batch_size]
            columns = [self._columns(prompt, rng) for prompt in block]
            tokens = prompt_tokens(columns, self.model.config).to(self.device)
            logits, _ = self.model(tokens)
            logits = logits.float()
            for row, prompt in enumerate(block):  # every prompt gene, also those a subsample left unread
                seen = [self.index[g] for g in prompt if g in self.index]
                if seen:
                    logits[row, torch.tensor(seen, device=self.device)] = float("-inf")
            out[start : start + len(block)] = torch.log_softmax(logits, dim=-1).cpu().numpy()
        return out

    def probabilities(self, prompts: Sequence[Sequence[str]]) -> np.ndarray:
        return np.exp(self.log_probabilities(prompts))

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int]) -> list[list[tuple[str, float]]]:
        results = []
        log_probs = self.log_probabilities(prompts)
        for row, prompt, count in zip(log_probs, prompts, n):
            excluded = [self.index[g] for g in set(prompt) if g in self.index]
            top = top_excluding(row, excluded, min(int(count), len(self.genes) - len(excluded)))
            results.append([(self.genes[i], float(np.exp(row[i]))) for i in top])
        return results
