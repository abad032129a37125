"""What the Pathway completion page shows beyond the tables (:mod:`cellang.completion.tables`): the co-membership
network (graph + offline HTML), the enrichment of the completed list with its plain-English reading, and the
metrics and downloads, gathered in one :class:`CompletionReport` so the page only draws; and the page's way to its
input (a corpus pathway, pasted genes, an uploaded file), its request and its run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from cellang.completion import completer as completers
from cellang.completion import gene_input as gene_inputs
from cellang.completion import request as requests
from cellang.completion import tables
from cellang.completion.completer import Completion, CompletionError, PathwayCompleter
from cellang.completion.gene_input import GeneInput, PathwayChoices, UploadResult
from cellang.completion.network import (
    CoMembership,
    co_membership_graph,
    graph_summary,
    network_legend,
    render_network_html,
)
from cellang.completion.request import CompletionRequest, run_completion
from cellang.completion.tables import (
    Metrics,
    completion_csv,
    completion_gmt,
    completion_metrics,
    evidence_table,
    file_stem,
    prediction_table,
    table_csv,
)
from cellang.corpus import Corpus, Pathway
from cellang.enrich import enrich_against_corpus, plain_reading, significance_note
from cellang.genes import load_resolver

# The library's limits and choices, under the names the page uses.
EXPAND = requests.EXPAND  # the task that proposes genes to add to a list
TEST = requests.TEST  # the task that hides part of a list and recovers it
EXPAND_N = requests.EXPAND_N  # genes proposed by default
MAX_RANKED = requests.MAX_RANKED  # genes a ranked completion may ask for
MAX_SAMPLED = requests.MAX_SAMPLED  # genes a sampled completion may ask for
MODES = completers.MODES  # "ranked", "sample"
MAX_UPLOAD_BYTES = gene_inputs.MAX_UPLOAD_BYTES  # the largest gene file read
EVIDENCE_SETS = tables.EVIDENCE_SETS  # supporting sets named per gene in the evidence CSV

NETWORK_MAX_PREDICTED = 60  # predictions drawn in the network (best first)
NETWORK_MAX_PROMPT = 150  # above this, prompt genes without an edge are left out of the drawing


@dataclass(frozen=True)
class CorpusResources:
    """Per-corpus structures built once: co-membership over the training sets, every set as a dict."""

    comembership: CoMembership
    gene_sets: dict[str, list[str]]
    descriptions: dict[str, str]

    @classmethod
    def build(cls, corpus: Corpus) -> CorpusResources:
        return cls(CoMembership(p.genes for p in corpus.split("train")),
                   {p.name: list(p.genes) for p in corpus.pathways},
                   {p.name: p.description for p in corpus.pathways})


@dataclass
class CompletionReport:
    completion: Completion
    set_name: str
    warnings: list[str]
    renamed: dict[str, str]
    metrics: Metrics | None
    predictions: pd.DataFrame
    missed: list[str]
    graph: nx.Graph
    network_html: str
    network_note: str
    enrichment: pd.DataFrame
    reading: str
    csv: bytes
    gmt: bytes
    file_stem: str
    evidence: pd.DataFrame  # long format (evidence_table); empty when the completer had no retrieval datastore
    evidence_csv: bytes
    set_descriptions: Mapping[str, str]  # training set name -> description, for the per-gene evidence

    @property
    def expanded(self) -> bool:
        """Nothing was hidden: every prediction is a proposed addition."""
        return not self.completion.masked

    def metric_rows(self) -> Mapping[str, str]:
        """The test's metrics as {label: value} for the page's metric cards (call only when ``metrics``)."""
        return tables.metric_rows(self.metrics)

    def evidence_of(self, gene: str) -> GeneEvidenceView:
        """Why ``gene`` was predicted: the shares of its score and its supporting training sets."""
        item = tables.gene_evidence(self.completion, gene)
        return GeneEvidenceView(tables.evidence_shares(item),
                                tables.gene_evidence_table(item, self.set_descriptions), len(item.sets))

    def evidence_note(self) -> str:
        """What the per-gene evidence shows, in words (under its table)."""
        return tables.evidence_note(self.completion)

    def network_caption(self) -> str:
        """The drawing's legend and what it holds."""
        return network_legend() + ". " + self.network_note

    def significance_note(self) -> str:
        """That no enriched set is significant, or that none overlaps ("" when some is significant)."""
        return significance_note(self.enrichment)


@dataclass(frozen=True)
class GeneEvidenceView:
    """One predicted gene's evidence as the page shows it: {label: share} of its score, one row per supporting
    set (and the rest, and the model), and how many sets support it."""

    shares: Mapping[str, str]
    table: pd.DataFrame
    sets: int


def build_report(completion: Completion, gene_input: GeneInput, resources: CorpusResources,
                 universe: Sequence[str], *, enrichment_top: int = 10,
                 network_max: int = NETWORK_MAX_PREDICTED) -> CompletionReport:
    """Tables, metrics, network, enrichment and downloads for one completion.

    ``universe``: the genes the model can predict (its vocabulary): the background of the overlap
    test and of the enrichment.
    """
    harmonisation = completion.harmonisation
    shown = completion.predictions[:network_max]
    graph = co_membership_graph(completion.prompt, shown, resources.comembership, masked=set(completion.masked),
                                keep_isolated_prompt=len(completion.prompt) <= NETWORK_MAX_PROMPT)
    counts = graph_summary(graph)
    note = (f"{counts['recovered'] + counts['novel']} predicted genes (the best {len(shown)}) and "
            f"{counts['prompt']} prompt genes; {counts['edges']} links, each to the prompt genes a predicted "
            "gene shares most training sets with (width: number of shared sets).")
    if counts["unlinked_predictions"]:
        note += f" {counts['unlinked_predictions']} predicted genes share no training set with the prompt."
    if len(completion.prompt) > NETWORK_MAX_PROMPT:
        note += " Prompt genes without a link are not drawn."
    enrichment = enrich_against_corpus(completion.genes, resources.gene_sets, list(universe), top=enrichment_top,
                                       descriptions=resources.descriptions)
    predicted = set(completion.genes)
    evidence = evidence_table(completion, resources.descriptions)
    return CompletionReport(
        completion=completion,
        set_name=gene_input.name,
        warnings=list(completion.notes),
        renamed=dict(harmonisation.renamed) if harmonisation else {},
        metrics=completion_metrics(completion, len(universe)),
        predictions=prediction_table(completion),
        missed=[g for g in completion.masked if g not in predicted],
        graph=graph,
        network_html=render_network_html(graph),
        network_note=note,
        enrichment=enrichment,
        reading=plain_reading(enrichment),
        csv=completion_csv(completion),
        gmt=completion_gmt(completion, gene_input.name, gene_input.description),
        file_stem=file_stem(gene_input.name) + "_completion",
        evidence=evidence,
        evidence_csv=table_csv(evidence),
        set_descriptions=resources.descriptions,
    )


# --- the page's input and run ----------------------------------------------------------------------------------

def load_completer() -> PathwayCompleter:
    """The shipped pathway completer; FileNotFoundError saying what is missing when it is not shipped."""
    return completers.load_completer()


def read_gene_file(name: str, data: bytes) -> UploadResult:
    """An uploaded GMT file or gene list: its gene sets and the problems met reading it (within
    :data:`MAX_UPLOAD_BYTES`); :class:`cellang.CellangError` when nothing can be read."""
    return gene_inputs.read_gene_file(name, data)


def pasted_input(text: str) -> GeneInput:
    """Genes pasted as text (any separators)."""
    return gene_inputs.pasted_input(text)


def pathway_input(pathway: Pathway) -> GeneInput:
    """A corpus pathway as the page's input."""
    return gene_inputs.pathway_input(pathway)


def pathway_label(pathway: Pathway) -> str:
    """A corpus pathway's label in the chooser."""
    return gene_inputs.pathway_label(pathway)


def pathway_choices(corpus: Corpus, query: str) -> PathwayChoices:
    """The corpus pathways offered for ``query`` (the held-out benchmark pathways when it is empty), gene
    identifiers resolved to approved symbols."""
    return gene_inputs.pathway_choices(corpus, load_resolver(), query)


def completion_request(genes: Sequence[str], mask_ratio: float, seed: int, n: int, mode: str, temperature: float,
                       top_k: int, n_samples: int) -> tuple[CompletionRequest | None, list[str]]:
    """The request the widgets describe and no problem, or None and every problem with it, in words."""
    try:
        return CompletionRequest(genes, mask_ratio, seed, n, mode, temperature, top_k, n_samples), []
    except CompletionError as error:
        return None, list(getattr(error, "problems", [str(error)]))


def complete(completer: PathwayCompleter, request: CompletionRequest, gene_input: GeneInput,
             resources: CorpusResources, universe: Sequence[str]) -> CompletionReport:
    """Run ``request`` with ``completer`` (gene identifiers resolved to approved symbols) and gather its report
    (:func:`build_report`); :class:`cellang.CellangError` when it cannot complete."""
    return build_report(run_completion(completer, request, load_resolver()), gene_input, resources, universe)
