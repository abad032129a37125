"""Masked training batches streamed from a :class:`~cellang.cells.stream.CellSource`, memory bounded.

Shuffling at scale without holding the cells: every epoch permutes the source's chunks (seeded by
(seed, epoch)), groups ``buffer_chunks`` of them, reads and tokenises one group at a time and serves that
group's cells in the in-memory batchers' order (cells of similar length together, then shuffled). Memory
holds one group: ``buffer_chunks x CHUNK_CELLS`` cells (8 x 1,024 by default), whatever the corpus size.

Batch number n is a pure function of n, as for the in-memory batchers: how many batches a group gives is
known from its chunk sizes without reading it, so resuming skips whole groups unread. Under torchrun the
loader partitions the cells: rank r reads only groups r, r + W, r + 2W, ... and serves batches of
``batch_size / W`` cells (``partitioned`` tells the trainer not to split them again).

Validation cells (a seeded fraction, at most ``max_validation`` cells) never enter a training batch or
the tokeniser's statistics; they are gathered in the same single pass that computes those statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anndata as ad
import numpy as np

from cellang.cells.stream import CellSource, ChunkSpan, iterate_chunks
from cellang.embedding.loading import Tokenizer
from cellang.tokenizers.cells import TokenizedCells, subset_rows

BUFFER_CHUNKS = 8
MAX_VALIDATION_CELLS = 2000


def validation_mask(n_cells: int, fraction: float, seed: int, max_cells: int = MAX_VALIDATION_CELLS) -> np.ndarray:
    """Boolean mask of the held-out cells: a seeded ``fraction`` of ``n_cells``, at least one, at most ``max_cells``."""
    if n_cells < 2:
        raise ValueError("need at least two cells to hold one out for validation")
    n_held = int(min(max_cells, max(1, round(fraction * n_cells))))
    mask = np.zeros(n_cells, dtype=bool)
    mask[np.random.default_rng((seed, 3)).choice(n_cells, size=n_held, replace=False)] = True
    return mask


@dataclass
class ValidationCells:
    """The held-out cells, gathered chunk by chunk while the training cells stream past."""

    mask: np.ndarray
    parts: list[ad.AnnData]

    def training_chunks(self, source: CellSource) -> Iterator[ad.AnnData]:
        """Every chunk's training cells, in file order; the held-out cells are kept aside in ``parts``."""
        for span in source.spans:
            chunk = source.read(span)
            held = span.of(self.mask)
            if held.any():
                self.parts.append(subset_rows(chunk, np.flatnonzero(held)))
            if not held.all():
                yield subset_rows(chunk, np.flatnonzero(~held)) if held.any() else chunk


class StreamingBatches:
    """Endless masked batches over a cell source's training cells (see the module docstring).

    ``make_batcher(cells, seed)`` builds the mode's in-memory batcher over one group's tokenised cells (batch
    size and mask ratio bound in); ``tokenizer`` turns each chunk into tokens.
    """

    def __init__(self, source: CellSource, tokenizer: Tokenizer, make_batcher, *, batch_size: int, seed: int,
                 held_out: np.ndarray, buffer_chunks: int = BUFFER_CHUNKS, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} does not split evenly over {world_size} ranks")
        self.source, self.tokenizer, self.make_batcher = source, tokenizer, make_batcher
        # Fewer chunks than ranks x buffer: smaller groups, so that every rank still has one.
        buffer_chunks = max(1, min(buffer_chunks, len(source.spans) // world_size))
        self.seed, self.buffer_chunks, self.rank, self.world_size = seed, buffer_chunks, rank, world_size
        self.local_batch = batch_size // world_size
        self.partitioned = world_size > 1
        self.held_out = held_out
        self._trainable = {span: int(span.n_cells - span.of(held_out).sum()) for span in source.spans}
        if len(source.spans) < world_size:
            raise ValueError(f"{len(source.spans)} chunks of cells cannot be shared by {world_size} ranks; "
                             "use smaller chunks or fewer ranks")
        if sum(self._trainable.values()) < batch_size:
            raise ValueError(f"{sum(self._trainable.values())} training cells cannot fill one batch of {batch_size}")

    def groups(self, epoch: int) -> list[list[ChunkSpan]]:
        """This rank's chunk groups of one epoch, in the order they are served."""
        order = np.random.default_rng((self.seed, epoch, 0)).permutation(len(self.source.spans))
        spans = [self.source.spans[i] for i in order]
        groups = [spans[i:i + self.buffer_chunks] for i in range(0, len(spans), self.buffer_chunks)]
        return groups[self.rank::self.world_size]

    def group_size(self, group: list[ChunkSpan]) -> int:
        """Batches one group gives (its training cells // the local batch size)."""
        return sum(self._trainable[span] for span in group) // self.local_batch

    def _group_batches(self, epoch: int, number: int, group: list[ChunkSpan], start: int) -> Iterator[tuple]:
        cells = TokenizedCells.concat([self.tokenizer.tokenize(chunk)
                                       for chunk in iterate_chunks(self.source, group, drop=self.held_out)])
        group_seed = int(np.random.default_rng((self.seed, epoch, 1, number, self.rank)).integers(2**31))
        yield from self.make_batcher(cells, group_seed).epoch_batches(0, start)

    def __call__(self, start: int = 0) -> Iterator[tuple]:
        """Batches from global (this rank's) batch number ``start`` on, over successive epochs."""
        epoch, skip = 0, start
        while True:
            groups = self.groups(epoch)
            if not any(self.group_size(g) for g in groups):
                raise ValueError(f"rank {self.rank} has no group that fills a batch of {self.local_batch} cells")
            for number, group in enumerate(groups):
                size = self.group_size(group)
                if skip >= size:
                    skip -= size
                    continue
                yield from self._group_batches(epoch, number, group, skip)
                skip = 0
            epoch += 1
