"""In-silico deletion and overexpression with a cell encoder (after Geneformer's perturber).

A cell's rank encoding is `<cls>` followed by its genes, most (relatively) expressed first. For each
chosen (cell, gene) pair:

* ``delete``: the gene is removed; the genes after it move up one position;
* ``overexpress``: the gene is moved to the top, right after `<cls>`; a gene the cell does not
  express is inserted there (the last gene drops out when the encoding is already max_len long).

A binned encoder (scGPT-style) reads each gene with its value bin and no order: ``delete`` drops the gene's token and
value, ``overexpress`` gives the gene the top bin (inserting it when absent, the last gene dropping out at max_len).
Its encodings are ordered by expression too, so a pair's position means the same in both kinds.

Both encodings are embedded (``pooling``: "mean" of the gene states, the default, or the "cls" state)
and scored (with mean pooling a deleted gene's own state leaves the mean too; that is part of the shift):

  shift      = 1 - cos(original, perturbed)                          how far the cell moves;
  goal_shift = cos(perturbed, goal) - cos(original, goal)            > 0: towards the goal state,

where ``goal`` is the mean embedding of the (unperturbed) goal-state cells. With a state classifier (an encoder
fine-tuned on labelled states, :mod:`cellang.embedding.classify`: its head and the goal state's number), also

  goal_probability_shift = P(goal | perturbed) - P(goal | original)   > 0: the classifier sees the goal state more.

Batched: every perturbed sequence is built on the device by index arithmetic on the padded token
matrix (one ``gather`` with shifted indices per batch), and sequences run through the encoder in
padded batches of at most ``max_batch_tokens`` tokens, longest cells first so padding stays small.
:func:`~cellang.perturbation.naive.naive_scores` is the reference: Python list edits and one
forward pass per perturbation.
Deterministic: eval mode, fp32, no random choices (the seed only picks cells in the workflow).

In:  the encoder (``CellEncoder`` in rank mode, or anything with ``embed`` and ``config``), the cells'
     token arrays (``RankTokenizer.tokenize(adata).genes``), a :class:`PerturbationPlan`.
Out: :class:`PerturbationScores` (``shift`` and ``goal_shift`` per planned pair).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cellang.device import autocast_context, pick_device
from cellang.errors import CellangError
from cellang.progress import Progress, time_left  # time_left: the engine's progress words
from cellang.tokenizers.cells import CLS_ID, PAD_ID, pad_rows

MODES = ("delete", "overexpress")
POOLINGS = ("mean", "cls")  # default first: the mean separated HSMM states better (silhouette 0.10 vs 0.07)
# Tokens per forward pass (sequences x padded length). On a CPU a batch-1 forward of a 255-gene cell is
# already GEMM-bound, so large batches only add cache misses and page faults (measured: 2,048 tokens ran
# 1.1x, 32,768 tokens 0.8x the naive loop on one core); on a GPU large batches are what make it fast.
CPU_BATCH_TOKENS = 2_048
CUDA_BATCH_TOKENS = 65_536
RESULT_BYTES_PER_PAIR = 160  # plan arrays, scores and one row of the ranked pandas table, measured generously


class PerturbError(CellangError, ValueError):
    """The perturbation cannot be run as asked; the message says why in plain words."""


@dataclass(frozen=True)
class PerturbationPlan:
    """Which (cell, gene) pairs to perturb, in scoring order.

    rows: index of the cell in the token list; gene_ids: token ids; positions: where the gene sits in
    the cell's encoding (1 = top gene), or -1 when the cell does not express it (overexpression only:
    the gene is inserted). All int64 arrays of one length.
    """

    rows: np.ndarray
    gene_ids: np.ndarray
    positions: np.ndarray
    mode: str

    def __len__(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class PerturbationScores:
    """shift and goal_shift (NaN without a goal) per planned pair, float64; the run's timing; goal_probability_shift
    (None without a state classifier)."""

    shift: np.ndarray
    goal_shift: np.ndarray
    seconds: float
    batches: int
    device: str
    goal_probability_shift: np.ndarray | None = None


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one batch on the device, bytes of the results in RAM, and the budgets they meet."""

    batch_bytes: int
    result_bytes: int
    device_budget: int
    ram_budget: int

    @property
    def fits(self) -> bool:
        return self.batch_bytes <= self.device_budget and self.result_bytes <= self.ram_budget


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise PerturbError(f"mode must be one of {MODES}, not {mode!r}")


def plan_perturbations(cell_tokens: Sequence[np.ndarray], gene_ids: Sequence[int] | None = None,
                       mode: str = "delete") -> PerturbationPlan:
    """Every (cell, gene) pair to score, ordered by cell then position (inserted genes last, by id).

    gene_ids None: every gene in every cell's encoding. Otherwise only those genes: ``delete`` keeps the
    pairs where the cell expresses the gene; ``overexpress`` takes every pair (absent genes inserted).
    """
    check_mode(mode)
    lengths = np.array([len(t) for t in cell_tokens], dtype=np.int64)
    flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in cell_tokens]) if len(lengths) else \
        np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    positions = np.arange(flat.size, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    present = positions >= 1  # position 0 is <cls>
    if gene_ids is not None:
        wanted = np.unique(np.asarray(list(gene_ids), dtype=np.int64))
        present &= np.isin(flat, wanted)
    rows, genes, positions = rows[present], flat[present], positions[present]
    if mode == "overexpress" and gene_ids is not None and wanted.size:
        stride = int(wanted.max()) + 1
        all_rows = np.repeat(np.arange(len(lengths), dtype=np.int64), wanted.size)
        all_genes = np.tile(wanted, len(lengths))
        absent = ~np.isin(all_rows * stride + all_genes, rows * stride + genes)
        rows = np.concatenate((rows, all_rows[absent]))
        genes = np.concatenate((genes, all_genes[absent]))
        positions = np.concatenate((positions, np.full(int(absent.sum()), -1, dtype=np.int64)))
        order = np.lexsort((genes, positions < 0, rows))
        rows, genes, positions = rows[order], genes[order], positions[order]
    return PerturbationPlan(rows, genes, positions, mode)


def perturbed_tokens(tokens: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor,
                     gene_ids: torch.Tensor, mode: str, max_len: int, width: int | None = None) -> torch.Tensor:
    """The perturbed encodings of the pairs (rows, positions, gene_ids) as one padded (K, T') tensor.

    tokens (N, T): the cells, right-padded with <pad>; lengths (N,). One gather with shifted indices:
    delete    out[k, j] = tokens[r, j + (j >= p)]                      (T' = T - 1)
    overexpr. out[k, j] = tokens[r, 0 if j == 0 else j - 1 if j <= p else j], out[k, 1] = gene
              with p = the cell's length for an absent gene              (T' = min(T + 1, max_len)).
    Trailing all-pad columns are trimmed; ``width``: cut to this many columns instead (the value bins of a binned
    encoder, whose 0 is a value and not padding, are cut to their tokens' width). The same arithmetic edits value
    bins: ``gene_ids`` then holds the bin the moved gene gets.
    """
    check_mode(mode)
    padded = F.pad(tokens, (0, 1), value=PAD_ID)  # one pad column: every shifted index stays in range
    width = tokens.shape[1] - 1 if mode == "delete" else min(tokens.shape[1] + 1, max_len)
    j = torch.arange(width, device=tokens.device)[None, :]
    p = positions[:, None]
    if mode == "delete":
        source = j + (j >= p).long()
    else:
        p = torch.where(p < 0, lengths[rows][:, None], p)
        source = torch.where(j == 0, torch.zeros_like(j), torch.where(j <= p, j - 1, j))
    out = padded[rows[:, None], source]
    if mode == "overexpress" and width > 1:
        out[:, 1] = gene_ids
    if width is not None:
        return out[:, :width]
    used = int((out != PAD_ID).sum(1).max().item()) if out.numel() else 0
    return out[:, :max(used, 1)]


def pooled(encoder: torch.nn.Module, tokens: torch.Tensor, pooling: str, values: torch.Tensor | None = None) -> torch.Tensor:
    cls, mean = encoder.embed(tokens) if values is None else encoder.embed(tokens, values)
    return (cls if pooling == "cls" else mean).float()


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine in float64: shifts of single genes can be ~1e-5, near float32's resolution of a cosine."""
    return F.cosine_similarity(a.double(), b.double(), dim=-1, eps=1e-12)


def _available_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # Linux without psutil
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate_memory(n_pairs: int, longest: int, encoder: torch.nn.Module, max_batch_tokens: int,
                    device: torch.device, ram_budget: int | None = None,
                    device_budget: int | None = None) -> MemoryEstimate:
    """Bytes one batch needs on `device` and the results need in RAM, against the budgets (default:
    half the available RAM; on CUDA, 80% of the free GPU memory).

    Batch: per token the residual stream, LayerNorm, q/k/v, attention output, the 4x MLP and its GELU
    (~16 x n_embd floats) plus a row of attention weights per head (n_head x longest), x2 headroom.
    """
    config = encoder.config
    per_token = 4 * (16 * config.n_embd + config.n_head * longest)
    batch = 2 * max(max_batch_tokens, longest) * per_token + 2 * 4 * config.n_genes * config.n_embd
    ram = ram_budget if ram_budget is not None else _available_ram() // 2
    if device_budget is None:
        device_budget = int(0.8 * torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else ram
    return MemoryEstimate(batch, n_pairs * RESULT_BYTES_PER_PAIR, int(device_budget), int(ram))


def default_batch_tokens(device: torch.device) -> int:
    """Tokens per batch that run fastest on this kind of device (see CPU_BATCH_TOKENS)."""
    return CUDA_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS


def _gigabytes(n: int) -> str:
    return f"{n / 1024**3:.2f} GB"


class Perturber:
    """Scores perturbation plans with one encoder, in token-budgeted batches on one device."""

    def __init__(self, encoder: torch.nn.Module, *, pooling: str = "mean", device: str | None = None,
                 max_batch_tokens: int | None = None, ram_budget: int | None = None,
                 device_budget: int | None = None, precision: str = "float32", head: torch.nn.Module | None = None,
                 goal_state: int | None = None) -> None:
        """encoder: rank-mode encoder (``embed(tokens) -> (cls, mean)``, ``config.max_len``); pooling:
        "cls" or "mean"; device: None/"auto", "cpu", "cuda"; max_batch_tokens: None = default_batch_tokens;
        budgets in bytes (None: see estimate_memory); precision: "float32" (default, the reference
        scores), "bfloat16" or "auto" (bf16 on CUDA): see ``device.autocast_context``. head, goal_state: a state
        classifier's head (pooled embedding -> logits; its pooling must be ``pooling``) and the goal state's number,
        to score goal_probability_shift as well."""
        if pooling not in POOLINGS:
            raise PerturbError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.binned = getattr(encoder.config, "mode", "rank") == "binned"
        self.top_bin = int(encoder.config.n_bins) - 1 if self.binned else 0
        self.device = pick_device(device)
        max_batch_tokens = default_batch_tokens(self.device) if max_batch_tokens is None else max_batch_tokens
        if max_batch_tokens < 2:
            raise PerturbError(f"max_batch_tokens must be at least 2, got {max_batch_tokens}")
        # Moved here, outside inference mode: weights moved under it would become inference tensors, which the
        # screen's backward pass cannot use.
        self.encoder = encoder.eval().to(self.device)
        self.pooling, self.max_batch_tokens = pooling, int(max_batch_tokens)
        self.max_len = int(encoder.config.max_len)
        self.ram_budget, self.device_budget = ram_budget, device_budget
        try:
            autocast_context(self.device, precision)  # validates the name before any work
        except ValueError as error:
            raise PerturbError(str(error)) from None
        self.precision = precision
        if (head is None) != (goal_state is None):
            raise PerturbError("a state classifier needs both its head and the goal state's number")
        self.head = None if head is None else head.eval().to(self.device)
        self.goal_state = goal_state

    def goal_probability(self, embeddings: torch.Tensor) -> torch.Tensor:
        """P(goal state) of pooled embeddings under the state classifier, float64."""
        return torch.softmax(self.head(embeddings.float()).double(), -1)[:, self.goal_state]  # type: ignore[misc]

    def _padded(self, cell_tokens: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([len(t) for t in cell_tokens], dtype=torch.long)
        if len(cell_tokens) and int(lengths.max()) > self.max_len:
            raise PerturbError(f"a cell has {int(lengths.max())} tokens; the encoder reads at most {self.max_len}")
        return pad_rows(cell_tokens).to(self.device), lengths.to(self.device)

    def _check_values(self, cell_tokens: Sequence[np.ndarray], cell_values: Sequence[np.ndarray] | None) -> None:
        if self.binned != (cell_values is not None):
            raise PerturbError("a binned encoder needs each cell's value bins, and a rank encoder none: tokenise the "
                               "cells with the encoder's own tokeniser")
        if cell_values is not None and [len(v) for v in cell_values] != [len(t) for t in cell_tokens]:
            raise PerturbError("each cell needs one value bin per token")

    @torch.inference_mode()
    def embed(self, cell_tokens: Sequence[np.ndarray], cell_values: Sequence[np.ndarray] | None = None) -> torch.Tensor:
        """(N, n_embd) float32 embeddings (this Perturber's pooling) of unperturbed cells, on the CPU; cell_values:
        the value bins of a binned encoder's cells."""
        self._check_values(cell_tokens, cell_values)
        order = np.argsort([-len(t) for t in cell_tokens], kind="stable")
        out = torch.zeros(len(cell_tokens), self.encoder.config.n_embd)
        self.encoder.to(self.device)
        start = 0
        while start < len(order):
            size = max(1, self.max_batch_tokens // len(cell_tokens[order[start]]))
            chosen = order[start:start + size]
            tokens = pad_rows([cell_tokens[i] for i in chosen]).to(self.device)
            values = None if cell_values is None else pad_rows([cell_values[i] for i in chosen]).to(self.device)
            with autocast_context(self.device, self.precision):
                out[torch.from_numpy(chosen)] = pooled(self.encoder, tokens, self.pooling, values).cpu()
            start += size
        return out

    def check_memory(self, n_pairs: int, longest: int, n_cells: int, n_genes: int) -> MemoryEstimate:
        """Raise PerturbError when the results of n_pairs perturbations (of n_cells cells x n_genes genes)
        or one batch would not fit (see estimate_memory). Call it before planning: it needs counts only."""
        estimate = estimate_memory(n_pairs, min(longest + 1, self.max_len), self.encoder, self.max_batch_tokens,
                                   self.device, self.ram_budget, self.device_budget)
        if estimate.result_bytes > estimate.ram_budget:
            raise PerturbError(
                f"Too many genes for memory: {n_cells:,} cells x {n_genes:,} genes = {n_pairs:,} perturbations "
                f"need about {_gigabytes(estimate.result_bytes)} for their scores, over the "
                f"{_gigabytes(estimate.ram_budget)} budget. Choose fewer cells or fewer genes.")
        if estimate.batch_bytes > estimate.device_budget:
            raise PerturbError(
                f"One batch of {self.max_batch_tokens:,} tokens needs about {_gigabytes(estimate.batch_bytes)} on "
                f"{self.device.type}, over the {_gigabytes(estimate.device_budget)} budget: lower max_batch_tokens.")
        return estimate

    def batches(self, plan: PerturbationPlan, lengths: np.ndarray) -> list[np.ndarray]:
        """Plan indices per batch: longest cells first, at most max_batch_tokens padded tokens each."""
        size_after = lengths[plan.rows] + (-1 if plan.mode == "delete" else (plan.positions < 0).astype(np.int64))
        size_after = np.minimum(size_after, self.max_len)
        order = np.lexsort((np.arange(len(plan)), -size_after))
        out, start = [], 0
        while start < len(order):
            count = max(1, self.max_batch_tokens // max(1, int(size_after[order[start]])))
            out.append(order[start:start + count])
            start += count
        return out

    @torch.inference_mode()
    def score(self, cell_tokens: Sequence[np.ndarray], plan: PerturbationPlan, goal: torch.Tensor | None = None,
              progress: Progress | None = None, original: torch.Tensor | None = None,
              cell_values: Sequence[np.ndarray] | None = None) -> PerturbationScores:
        """shift and goal_shift of every pair of `plan` (cells = `cell_tokens`, and `cell_values` for a binned
        encoder); goal: (n_embd,) or None; original: the cells' embeddings when already computed (``embed``);
        progress(fraction, text)."""
        began = time.perf_counter()
        self._check_values(cell_tokens, cell_values)
        lengths_np = np.array([len(t) for t in cell_tokens], dtype=np.int64)
        longest = int(lengths_np.max()) if len(lengths_np) else 0
        self.check_memory(len(plan), longest, len(cell_tokens), len(np.unique(plan.gene_ids)))
        shift = np.full(len(plan), np.nan)
        goal_shift = np.full(len(plan), np.nan)
        if len(plan) == 0:
            return PerturbationScores(shift, goal_shift, 0.0, 0, str(self.device))
        original = self.embed(cell_tokens, cell_values) if original is None else original
        tokens, lengths = self._padded(cell_tokens)
        values = None if cell_values is None else pad_rows(cell_values).to(self.device)
        original_dev = original.to(self.device)
        goal_dev = None if goal is None else goal.float().to(self.device)
        original_goal = None if goal_dev is None else cosine(original_dev, goal_dev[None, :])
        probability_shift = None if self.head is None else np.full(len(plan), np.nan)
        original_probability = None if self.head is None else self.goal_probability(original_dev)
        plan_dev = [torch.from_numpy(a).to(self.device) for a in (plan.rows, plan.positions, plan.gene_ids)]
        self.encoder.to(self.device)
        batches = self.batches(plan, lengths_np)
        done = 0
        for number, chosen in enumerate(batches):
            index = torch.from_numpy(chosen).to(self.device)
            rows, positions, genes = (a[index] for a in plan_dev)
            sequences = perturbed_tokens(tokens, lengths, rows, positions, genes, plan.mode, self.max_len)
            bins = None if values is None else perturbed_tokens(
                values, lengths, rows, positions, torch.full_like(genes, self.top_bin), plan.mode, self.max_len,
                width=sequences.shape[1])
            with autocast_context(self.device, self.precision):
                perturbed = pooled(self.encoder, sequences, self.pooling, bins)
            shift[chosen] = (1.0 - cosine(original_dev[rows], perturbed)).cpu().numpy()
            if goal_dev is not None:
                moved = cosine(perturbed, goal_dev[None, :]) - original_goal[rows]
                goal_shift[chosen] = moved.cpu().numpy()
            if probability_shift is not None:
                probability_shift[chosen] = (self.goal_probability(perturbed) - original_probability[rows]).cpu().numpy()
            done += len(chosen)
            if progress is not None and (number + 1 == len(batches) or (number + 1) % max(1, len(batches) // 100) == 0):
                progress(done / len(plan), f"Perturbed {done:,} of {len(plan):,} (cell, gene) pairs "
                                           f"(batch {number + 1} of {len(batches)}; "
                                           f"{time_left(time.perf_counter() - began, done, len(plan))})")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return PerturbationScores(shift, goal_shift, time.perf_counter() - began, len(batches), str(self.device),
                                  probability_shift)


def check_cls(cell_tokens: Sequence[np.ndarray]) -> None:
    """Every encoding must start with <cls> (the rank tokeniser's output)."""
    for tokens in cell_tokens:
        if len(tokens) == 0 or int(tokens[0]) != CLS_ID:
            raise PerturbError("every cell encoding must start with <cls>: tokenise with the rank tokeniser")


__all__ = ["CPU_BATCH_TOKENS", "CUDA_BATCH_TOKENS", "MODES", "POOLINGS", "MemoryEstimate", "PerturbError",
           "PerturbationPlan", "PerturbationScores", "Perturber", "check_cls", "check_mode", "cosine",
           "default_batch_tokens", "estimate_memory", "perturbed_tokens", "plan_perturbations", "pooled"]
