"""Complete a masked pathway with the pathway language model.

In:  genes (any identifiers), a mask ratio and a seed, or a prompt directly.
Out: a :class:`Completion`: the prompt, the held-out genes, and the predicted genes ranked with
scores (never a prompt gene, never twice, only genes of the model's vocabulary; ranked by
:func:`~cellang.completion.ranking.top_excluding`, as every completer is).

``load_completer`` returns the best completer shipped: the GPT interpolated with set retrieval over
the training sets (kNN-LM style, weights tuned on validation sets, stored in ``completer.json``
beside the weights), or the GPT alone when no such file exists. ``rankings()`` names the rankings a
completer offers (the retrieval-augmented one: the mixture and the GPT alone), ``describe()`` what its
ranking is made of; a page shows them without knowing which completer it holds.

Two modes:
* ``ranked`` (deterministic): the model's probability of each gene being a further member of the set,
  averaged over several seeded orders of the prompt (a pathway is a set, so order should not matter);
* ``sample``: autoregressive sampling with temperature and top-k, several samples merged by how often
  each gene was drawn (ties broken by mean probability).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cellang import checkpoints
from cellang.checkpoints import reading
from cellang.completion.evidence import GeneEvidence, explain
from cellang.completion.loading import load_pathway_model
from cellang.completion.ranking import top_excluding
from cellang.completion.retrieval import SetRetrievalCompleter
from cellang.device import pick_device
from cellang.errors import CellangError
from cellang.genes import GeneResolver, Harmonisation, load_resolver
from cellang.models.gpt import GPT
from cellang.paths import CHECKPOINT_DIR
from cellang.text import plural
from cellang.tokenizers.pathway import BOS_ID, PathwayVocabulary

DEFAULT_MODEL_DIR = CHECKPOINT_DIR / "pathway-gpt"
MODES = ("ranked", "sample")
# The rankings a completer offers (PathwayCompleter.rankings), by these labels.
LANGUAGE_MODEL_ONLY = "language model only"
BEST_ON_VALIDATION = "best on validation"
SET_RETRIEVAL_ONLY = "set retrieval only"


class CompletionError(CellangError, ValueError):
    """The input cannot be completed; the message says why in plain words."""


@dataclass(frozen=True)
class MaskedPathway:
    """A pathway split into the genes shown to a model (prompt) and the genes held out (masked)."""

    genes: tuple[str, ...]
    prompt: tuple[str, ...]
    masked: tuple[str, ...]


@dataclass
class Completion:
    prompt: tuple[str, ...]
    predictions: list[tuple[str, float]]  # (gene, score), best first
    method: str
    masked: tuple[str, ...] = ()
    harmonisation: Harmonisation | None = None
    notes: list[str] = field(default_factory=list)
    mask_ratio: float | None = None  # None: nothing was hidden
    seed: int = 0
    # per prediction, in order: the training sets that support it and the model's share of its score
    evidence: list[GeneEvidence] = field(default_factory=list)

    @property
    def genes(self) -> list[str]:
        return [gene for gene, _ in self.predictions]

    @property
    def recovered(self) -> list[str]:
        """Predicted genes that were held out."""
        held_out = set(self.masked)
        return [g for g in self.genes if g in held_out]

    @property
    def novel(self) -> list[tuple[str, float]]:
        """Predicted genes that were not held out, with scores."""
        held_out = set(self.masked)
        return [(g, s) for g, s in self.predictions if g not in held_out]


def masked_count(n: int, mask_ratio: float) -> int:
    """How many of ``n`` genes a mask of ``mask_ratio`` hides: round(mask_ratio * n), at least 1, at most
    n - 1, so a prompt and a target are both left (n >= 2)."""
    return min(max(round(mask_ratio * n), 1), n - 1)


def mask_pathway(genes: Sequence[str], mask_ratio: float, seed: int | tuple[int, ...]) -> MaskedPathway:
    """Hold out :func:`masked_count` of the genes, chosen by ``seed`` (an int or a tuple of ints, as numpy's
    seed sequences take)."""
    unique = tuple(dict.fromkeys(genes))
    if not 0.0 < mask_ratio < 1.0:
        raise CompletionError(f"mask ratio must be between 0 and 1 (exclusive), got {mask_ratio}")
    if len(unique) < 2:
        raise CompletionError(f"a pathway needs at least 2 known genes to mask some and keep some; got {len(unique)}")
    n_masked = masked_count(len(unique), mask_ratio)
    order = np.random.default_rng(seed).permutation(len(unique))
    masked = {unique[i] for i in order[:n_masked]}
    return MaskedPathway(unique, tuple(g for g in unique if g not in masked), tuple(g for g in unique if g in masked))


class PathwayCompleter:
    """The GPT as a completer: ``rank`` for the benchmark, ``complete`` for people.

    ``evidence`` (set retrieval over the training sets, with their names) lets ``complete`` name the sets
    that hold each predicted gene; ``retrieval_weight`` is the share of retrieval in the ranking's score
    (0 here: the GPT alone).
    """

    name = "pathway-gpt"
    retrieval_weight = 0.0

    def __init__(self, model: GPT, vocabulary: PathwayVocabulary, *, window: int | None = None,
                 n_orders: int = 8, device: torch.device | None = None, batch_size: int = 64,
                 evidence: SetRetrievalCompleter | None = None):
        self.device = device or pick_device()
        self.model = model.to(self.device).eval()
        self.vocabulary = vocabulary
        self.window = min(window or model.config.block_size - 1, model.config.block_size - 1)
        self.n_orders = n_orders
        self.batch_size = batch_size
        self._gene_offset = len(vocabulary) - len(vocabulary.genes)  # specials come first
        self.evidence = evidence

    @classmethod
    def load(cls, directory: Path = DEFAULT_MODEL_DIR, **kwargs: object) -> PathwayCompleter:
        model, vocabulary, record = load_pathway_model(checkpoints.require("pathway-gpt", directory))
        return cls(model, vocabulary, window=record.get("window"), **kwargs)  # type: ignore[arg-type]

    @property
    def universe(self) -> list[str]:
        return list(self.vocabulary.genes)

    def rankings(self) -> dict[str, PathwayCompleter]:
        """The ranked completions this completer offers, by label, the one it ranks by first: the GPT
        offers itself; a subclass that mixes something in offers the mixture and the model alone."""
        return {LANGUAGE_MODEL_ONLY: self}

    def describe(self) -> str:
        """One plain sentence on what the ranking is made of."""
        return "Ranked completions come from the language model alone."

    # --- scoring ------------------------------------------------------------------------------

    @torch.no_grad()
    def probabilities(self, prompts: Sequence[Sequence[str]], seed: int = 0) -> np.ndarray:
        """(len(prompts), n_genes) mean probability that each gene is a further member of each set.

        Each prompt is fed in ``n_orders`` seeded orders (a random subset of ``window`` genes when it
        is longer); the next-position distributions are averaged. Unknown genes raise KeyError.
        """
        rows: list[list[int]] = []
        for index, prompt in enumerate(prompts):
            ids = np.asarray(self.vocabulary.gene_ids(prompt), dtype=np.int64)
            rng = np.random.default_rng((seed, index))
            for _ in range(self.n_orders):
                rows.append([BOS_ID, *ids[rng.permutation(len(ids))][: self.window].tolist()])
        probabilities = np.empty((len(rows), len(self.vocabulary.genes)), dtype=np.float32)
        # longest first keeps padding small; results are put back in order
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            length = max(len(rows[i]) for i in chunk)
            tokens = torch.zeros((len(chunk), length), dtype=torch.long)
            last = torch.tensor([len(rows[i]) - 1 for i in chunk])
            for j, i in enumerate(chunk):
                tokens[j, : len(rows[i])] = torch.tensor(rows[i])
            hidden = self.model.hidden_states(tokens.to(self.device))
            logits = self.model.lm_head(hidden[torch.arange(len(chunk)), last.to(self.device)]).float()
            logits[:, : self._gene_offset] = float("-inf")
            probabilities[chunk] = torch.softmax(logits, -1)[:, self._gene_offset:].cpu().numpy()
        return probabilities.reshape(len(prompts), self.n_orders, -1).mean(axis=1)

    def rank(self, prompts: Sequence[Sequence[str]], n: Sequence[int], seed: int = 0) -> list[list[tuple[str, float]]]:
        """Top ``n[i]`` genes for each prompt, prompt genes excluded (the benchmark interface)."""
        genes = self.vocabulary.genes
        results = []
        for start in range(0, len(prompts), 256):
            block = prompts[start:start + 256]
            scores = self.probabilities(block, seed=seed + start)
            for row, prompt, count in zip(scores, block, n[start:start + 256]):
                excluded = [gene_id - self._gene_offset for gene_id in self.vocabulary.gene_ids(prompt)]
                results.append([(genes[i], float(row[i])) for i in top_excluding(row, excluded, count)])
        return results

    @torch.no_grad()
    def sample(self, prompt: Sequence[str], n: int, *, temperature: float = 1.0, top_k: int | None = 50,
               n_samples: int = 8, seed: int = 0) -> list[tuple[str, float]]:
        """Sample ``n_samples`` continuations of ``n`` genes each; merge by frequency of each gene."""
        if temperature <= 0:
            raise CompletionError(f"temperature must be positive, got {temperature}")
        generator = torch.Generator(device="cpu").manual_seed(seed)
        ids = torch.tensor(self.vocabulary.gene_ids(prompt))
        context = torch.stack([
            torch.cat([torch.tensor([BOS_ID]), ids[torch.randperm(len(ids), generator=generator)][: self.window]])
            for _ in range(n_samples)
        ]).to(self.device)
        banned = torch.zeros((n_samples, len(self.vocabulary)), dtype=torch.bool, device=self.device)
        banned[:, : self._gene_offset] = True
        banned[:, ids.to(self.device)] = True
        drawn = torch.zeros((n_samples, len(self.vocabulary)), device=self.device)
        probability_sum = torch.zeros(len(self.vocabulary), device=self.device)
        for _ in range(min(n, len(self.vocabulary.genes) - len(set(prompt)))):
            recent = context[:, -self.model.config.block_size:]
            logits = self.model.lm_head(self.model.hidden_states(recent)[:, -1]).float()
            logits = logits.masked_fill(banned, float("-inf")) / temperature
            if top_k is not None:
                cutoff = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < cutoff, float("-inf"))
            probs = torch.softmax(logits, -1)
            choice = torch.multinomial(probs.cpu(), 1, generator=generator).to(self.device)
            probability_sum += probs.sum(0)
            drawn.scatter_(1, choice, 1.0)
            banned.scatter_(1, choice, True)
            context = torch.cat([context, choice], dim=1)
        frequency = drawn.mean(0) + probability_sum / probability_sum.sum().clamp(min=1e-12) * 1e-3
        frequency[: self._gene_offset] = -1
        frequency[ids.to(self.device)] = -1
        # Not top_excluding: genes drawn equally often often tie in float32 too, and this order is the one
        # sampled completions have always been shown in.
        top = torch.argsort(frequency, descending=True)[:n].cpu().tolist()
        return [(self.vocabulary.token(i), float(drawn.mean(0)[i])) for i in top]

    # --- for people ---------------------------------------------------------------------------

    def complete(self, genes: Sequence[str], *, mask_ratio: float | None = None, seed: int = 0,
                 n: int | None = None, mode: str = "ranked", temperature: float = 1.0,
                 top_k: int | None = 50, n_samples: int = 8,
                 resolver: GeneResolver | None = None) -> Completion:
        """Harmonise ``genes``, hold out ``mask_ratio`` of them (None: use them all as the prompt) and
        predict ``n`` genes (default: as many as were held out, or 20 without masking)."""
        if mode not in MODES:
            raise CompletionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        harmonisation = (resolver or load_resolver()).harmonise(genes)
        known = [g for g in harmonisation.symbols if g in self.vocabulary]
        notes = []
        outside = [g for g in harmonisation.symbols if g not in self.vocabulary]
        if outside:
            notes.append(f"{len(outside)} recognised gene(s) are not in the model's vocabulary and were left out: "
                         + ", ".join(outside[:10]) + (" ..." if len(outside) > 10 else ""))
        if harmonisation.unknown or harmonisation.ambiguous:
            notes.append(harmonisation.summary())
        if harmonisation.repeats:
            notes.append(f"{plural(harmonisation.repeats, 'identifier')} named a gene already given and "
                         f"counted once: {plural(len(harmonisation.matches), 'identifier')} became "
                         f"{plural(len(harmonisation.symbols), 'gene')}.")
        if not known:
            raise CompletionError("none of the genes given is in the model's vocabulary. " + harmonisation.summary())
        if mask_ratio is None:
            prompt, masked = tuple(known), ()
        else:
            split = mask_pathway(known, mask_ratio, seed)
            prompt, masked = split.prompt, split.masked
        count = n if n is not None else (len(masked) or 20)
        if count < 1:
            raise CompletionError(f"ask for at least one gene, got {count}")
        if mode == "ranked":
            predictions = self.rank([prompt], [count], seed=seed)[0]
        else:
            predictions = self.sample(prompt, count, temperature=temperature, top_k=top_k,
                                      n_samples=n_samples, seed=seed)
        # Sampling always draws from the language model, whatever a subclass mixes into the ranking.
        method = f"{self.name} (ranked)" if mode == "ranked" else f"{PathwayCompleter.name} (sample)"
        evidence = []
        if self.evidence is not None:
            evidence = explain(self.evidence, prompt, predictions, self.retrieval_weight if mode == "ranked" else 0.0)
        return Completion(prompt, predictions, method, masked, harmonisation, notes, mask_ratio, seed, evidence)


class RetrievalAugmentedCompleter(PathwayCompleter):
    """The GPT's distribution interpolated with set retrieval: (1 - weight) * p_gpt + weight * p_retrieval.

    Sampling (``mode="sample"``) uses the GPT alone; ranking and ``complete`` use the mixture.
    """

    name = "pathway-gpt+retrieval"

    def __init__(self, model: GPT, vocabulary: PathwayVocabulary, retrieval: SetRetrievalCompleter,
                 weight: float, **kwargs: object):
        super().__init__(model, vocabulary, **kwargs)  # type: ignore[arg-type]
        if list(retrieval.universe) != list(vocabulary.genes):
            raise ValueError("the retrieval datastore and the model must share one gene universe")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"interpolation weight must be in [0, 1], got {weight}")
        self.retrieval = retrieval
        self.weight = weight
        self.evidence = retrieval
        self.retrieval_weight = weight

    def model_only(self) -> PathwayCompleter:
        """The same language model without retrieval (the training sets still named as evidence)."""
        return PathwayCompleter(self.model, self.vocabulary, window=self.window, n_orders=self.n_orders,
                                device=self.device, batch_size=self.batch_size, evidence=self.retrieval)

    def rankings(self) -> dict[str, PathwayCompleter]:
        return {BEST_ON_VALIDATION: self, **self.model_only().rankings()}

    def describe(self) -> str:
        if self.weight >= 1.0:
            return ("Ranked completions come from retrieval over the model's training sets: on validation "
                    "pathways retrieval beat the language model, and mixing the model in did not raise recall "
                    "(see the README's benchmark).")
        return (f"Ranked completions mix the language model with retrieval over its training sets (weight "
                f"{self.weight:g} on retrieval, chosen on validation pathways; see the README's benchmark).")

    def probabilities(self, prompts: Sequence[Sequence[str]], seed: int = 0) -> np.ndarray:
        mixture = (1.0 - self.weight) * super().probabilities(prompts, seed)
        if self.weight > 0:
            mixture += self.weight * self.retrieval.probabilities(prompts)
        return mixture


COMPLETER_CONFIG = "completer.json"


def retrieval_settings(model_dir: Path) -> tuple[float, float]:
    """(alpha, power) of set retrieval that cellang tune completer chose for ``model_dir``."""
    with reading(model_dir):
        config = json.loads((model_dir / COMPLETER_CONFIG).read_text(encoding="utf-8"))
        return config["alpha"], config["power"]


def load_completer(directory: Path = DEFAULT_MODEL_DIR, train_sets: Sequence[Sequence[str]] | None = None,
                   names: Sequence[str] | None = None, descriptions: Sequence[str] | None = None,
                   **kwargs: object) -> PathwayCompleter:
    """The shipped completer, as ``completer.json`` in ``directory`` says: the retrieval reader when it names
    one (``"reader"``: a checkpoint folder beside ``directory``; mixed with the masked-set transformer when it
    names one, ``"set_model"``, with ``"set_model_share"`` > 0, or ranked with it by the ``"stacker"`` it
    holds), else the GPT mixed with set retrieval, else
    (no such file) the GPT alone.

    ``train_sets`` (with ``names``, for evidence) is the retrieval datastore (default: the corpus train
    split, which the models were trained on).
    """
    directory = Path(directory)
    plain = PathwayCompleter.load(directory, **kwargs)
    config_path = directory / COMPLETER_CONFIG
    if not config_path.exists():
        return plain
    with reading(directory):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        alpha, power, weight = config["alpha"], config["power"], config["weight"]
        reader_name = config.get("reader")
        set_model_name, set_model_share = config.get("set_model"), float(config.get("set_model_share", 0.0))
        # completer.json written before the single-gene reading was tuned chose its share for the whole prompt alone
        single_gene_share = float(config.get("set_model_single_gene_share", 0.0))
        stacker_json = config.get("stacker")
    if train_sets is None:
        from cellang.corpus import load_corpus

        train = load_corpus().split("train")
        train_sets, names = [p.genes for p in train], [p.name for p in train]
        descriptions = [p.description for p in train]
    retrieval = SetRetrievalCompleter(train_sets, plain.vocabulary.genes, alpha=alpha, power=power, names=names,
                                      descriptions=descriptions)
    shared = {"window": plain.window, "n_orders": plain.n_orders, "device": plain.device}
    if reader_name:
        from cellang.completion.rerank import ReaderCompleter, RerankCompleter

        reader = RerankCompleter.load(directory.parent / reader_name, train_sets, plain.vocabulary.genes)
        set_model, stacker = None, None
        if set_model_name and (set_model_share > 0 or stacker_json):
            from cellang.completion.set_model import SetModelCompleter
            from cellang.completion.stacking import Stacker

            set_model = SetModelCompleter.load(directory.parent / set_model_name, device=plain.device,
                                               single_gene_share=single_gene_share)
            with reading(directory):
                stacker = Stacker.from_json(stacker_json) if stacker_json else None
        return ReaderCompleter(plain.model, plain.vocabulary, retrieval, reader, config.get("reader_validation"),
                               set_model=set_model, set_model_share=set_model_share if set_model else 0.0,
                               stacker=stacker, **shared)
    return RetrievalAugmentedCompleter(plain.model, plain.vocabulary, retrieval, weight, **shared)
