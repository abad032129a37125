"""Pathway tokeniser: where a gene symbol becomes a token.

A pathway is a SET of approved gene symbols. It is written as one sequence
`<bos> g1 g2 ... gk <eos>` whose gene order is drawn at random every time it is seen, so the
model cannot learn an order that the data does not have.

`PathwayVocabulary` maps symbols <-> ids; `PathwayBatcher` turns a list of gene sets into
reproducible, resumable (inputs, targets) batches for the trainer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellang.batching import Batch, EpochBatcher

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

_FORMAT = "cellang-pathway-vocabulary"
_VERSION = 1



class PathwayVocabulary:
    """Special tokens `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3, then genes in sorted order."""

    def __init__(self, genes: Iterable[str]) -> None:
        unique = sorted(set(genes))
        for gene in unique:
            if not isinstance(gene, str) or not gene.strip():
                raise ValueError(f"gene symbols must be non-empty strings, got {gene!r}")
            if gene in SPECIAL_TOKENS:
                raise ValueError(f"{gene!r} is a reserved special token, not a gene symbol")
        self._tokens: list[str] = [*SPECIAL_TOKENS, *unique]
        self._ids: dict[str, int] = {token: i for i, token in enumerate(self._tokens)}

    @classmethod
    def from_gene_sets(cls, gene_sets: Iterable[Iterable[str]]) -> PathwayVocabulary:
        """Vocabulary of every gene that appears in any of the sets."""
        return cls(gene for gene_set in gene_sets for gene in gene_set)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, gene: object) -> bool:
        return gene in self._ids and gene not in SPECIAL_TOKENS

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathwayVocabulary) and self._tokens == other._tokens

    @property
    def genes(self) -> tuple[str, ...]:
        """Gene symbols in id order (ids start at len(SPECIAL_TOKENS))."""
        return tuple(self._tokens[len(SPECIAL_TOKENS) :])

    def token(self, token_id: int) -> str:
        """The token (gene symbol or special) for one id."""
        return self._tokens[token_id]

    def gene_ids(self, genes: Iterable[str]) -> list[int]:
        """Ids of gene symbols, in the given order. Raises KeyError naming an unknown gene."""
        ids = []
        for gene in genes:
            token_id = self._ids.get(gene)
            if token_id is None or token_id < len(SPECIAL_TOKENS):
                raise KeyError(
                    f"gene {gene!r} is not in the pathway vocabulary ({len(self.genes)} genes); "
                    "harmonise symbols to the vocabulary before encoding"
                )
            ids.append(token_id)
        return ids

    def encode(self, genes: Iterable[str], rng: np.random.Generator | None = None) -> list[int]:
        """`<bos> g... <eos>` ids for one gene set; gene order is shuffled by `rng` when given."""
        ids = self.gene_ids(genes)
        if rng is not None:
            ids = [ids[i] for i in rng.permutation(len(ids))]
        return [BOS_ID, *ids, EOS_ID]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Gene symbols for ids, dropping special tokens (pad, bos, eos, unk)."""
        return [self._tokens[int(i)] for i in ids if int(i) >= len(SPECIAL_TOKENS)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_json(to_json())` gives an equal vocabulary."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "genes": list(self.genes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PathwayVocabulary:
        """Inverse of `to_json`; rejects other formats and different special tokens."""
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} v{_VERSION} vocabulary: "
                f"format={data.get('format')!r} version={data.get('version')!r}"
            )
        if tuple(data.get("special_tokens", ())) != SPECIAL_TOKENS:
            raise ValueError(f"special tokens {data.get('special_tokens')!r} != {SPECIAL_TOKENS!r}")
        genes = list(data["genes"])
        vocabulary = cls(genes)
        if list(vocabulary.genes) != genes:
            # Ids are positions, so a reordered or duplicated list would silently remap tokens.
            raise ValueError("vocabulary genes must be unique and sorted")
        return vocabulary

    def save(self, path: str | Path) -> None:
        """Write `to_json()` as UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> PathwayVocabulary:
        """Read a file written by `save`."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


class PathwayBatcher(EpochBatcher):
    """Padded (inputs, targets) batches where each row is exactly one pathway.

    Row = `<bos> shuffled genes <eos>` padded with `<pad>`; inputs are the row without its last
    token, targets the row shifted left by one, so pad targets (id 0) are ignored by the loss.
    Rows never share a pathway and windows never cross pathway boundaries. Sets with more than
    block_size - 1 genes keep a random subset of block_size - 1 (truncated after shuffling),
    so inputs are at most block_size tokens long.

    Every epoch draws a new order of sets and a new gene order, from generators seeded by
    (seed, epoch) and (seed, epoch, batch), so batch number n is a pure function of n:
    iteration is reproducible and resumes from any position without replaying the past.
    """

    def __init__(
        self,
        gene_sets: Sequence[Sequence[str]],
        vocabulary: PathwayVocabulary,
        *,
        batch_size: int,
        block_size: int,
        seed: int,
        drop_last: bool = True,
    ) -> None:
        """gene_sets: pathways as gene symbols (all in `vocabulary`); drop_last: skip the final
        short batch of each epoch (keeps every training batch the same size)."""
        if block_size < 2:
            raise ValueError(f"need block_size >= 2, got {block_size}")
        super().__init__(n_items=len(gene_sets), batch_size=batch_size, seed=seed, drop_last=drop_last,
                         what="gene sets")
        self._items = [np.asarray(vocabulary.gene_ids(genes), dtype=np.int64) for genes in gene_sets]
        self.block_size = block_size

    def _make_batch(self, sets: list[np.ndarray], rng: np.random.Generator) -> Batch:
        return self._collate([self._row(gene_ids, rng) for gene_ids in sets])

    def _row(self, gene_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        genes = gene_ids[rng.permutation(len(gene_ids))][: self.block_size - 1]
        return np.concatenate(([BOS_ID], genes, [EOS_ID]))

    @staticmethod
    def _collate(rows: list[np.ndarray]) -> Batch:
        tokens = torch.full((len(rows), max(len(r) for r in rows)), PAD_ID, dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.from_numpy(row)
        return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


class SetBatcher(PathwayBatcher):
    """(inputs, members, positions) batches for the GPT's set objective.

    Each row is one pathway in a fresh random order: inputs = `<bos>` + its first `window` members,
    members = the whole shuffled set (padded), positions = up to `positions_per_set` input positions
    to score, drawn without replacement from those with at least one member left unseen. Sets are
    bucketed by length within chunks of `bucket_batches` batches so rows in a batch are of similar
    length (little padding); the batch order is then shuffled. All draws are seeded by
    (seed, epoch[, batch]), so batches are a pure function of their number, as in PathwayBatcher.
    """

    def __init__(
        self,
        gene_sets: Sequence[Sequence[str]],
        vocabulary: PathwayVocabulary,
        *,
        batch_size: int,
        window: int,
        positions_per_set: int,
        seed: int,
        drop_last: bool = True,
        bucket_batches: int = 32,
    ) -> None:
        super().__init__(gene_sets, vocabulary, batch_size=batch_size, block_size=window + 1, seed=seed,
                         drop_last=drop_last)
        if positions_per_set < 1:
            raise ValueError(f"positions_per_set must be >= 1, got {positions_per_set}")
        self.window = window
        self.positions_per_set = positions_per_set
        self.bucket_batches = bucket_batches

    def _epoch_plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, epoch, 0))
        order = rng.permutation(len(self._items))
        lengths = np.array([min(len(s), self.window) for s in self._items])
        chunk = self.batch_size * self.bucket_batches
        bucketed = np.concatenate([
            part[np.argsort(lengths[part], kind="stable")] for part in np.array_split(order, max(1, -(-len(order) // chunk)))
        ])
        batches = [bucketed[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.batches_per_epoch)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _make_batch(self, sets: list[np.ndarray], rng: np.random.Generator) -> Batch:
        shuffled = [gene_ids[rng.permutation(len(gene_ids))] for gene_ids in sets]
        length = 1 + max(min(len(s), self.window) for s in shuffled)
        inputs = torch.full((len(sets), length), PAD_ID, dtype=torch.long)
        members = torch.full((len(sets), max(len(s) for s in shuffled)), PAD_ID, dtype=torch.long)
        positions = torch.full((len(sets), self.positions_per_set), -1, dtype=torch.long)
        for row, genes in enumerate(shuffled):
            fed = genes[: self.window]
            inputs[row, 0] = BOS_ID
            inputs[row, 1 : 1 + len(fed)] = torch.from_numpy(fed)
            members[row, : len(genes)] = torch.from_numpy(genes)
            # input position t has seen t members; it is worth scoring while t < len(genes)
            candidates = min(len(fed) + 1, len(genes))
            chosen = np.sort(rng.choice(candidates, size=min(candidates, self.positions_per_set), replace=False))
            positions[row, : len(chosen)] = torch.from_numpy(chosen)
        return inputs, members, positions
