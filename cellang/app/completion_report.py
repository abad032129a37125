"""What the Pathway completion page shows beyond the tables (:mod:`cellang.completion.tables`): the co-membership
network (graph + offline HTML), the enrichment of the completed list with its plain-English reading, and the
metrics and downloads, gathered in one :class:`CompletionReport` so the page only draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from cellang.completion.completer import MODES, Completion, CompletionError, PathwayCompleter, load_completer
from cellang.completion.gene_input import (
    MAX_UPLOAD_BYTES,
    GeneInput,
    UploadResult,
    pasted_input,
    pathway_choices,
    pathway_input,
    pathway_label,
    read_gene_file,
)
from cellang.completion.network import (
    CoMembership,
    co_membership_graph,
    graph_summary,
    network_legend,
    render_network_html,
)
from cellang.completion.request import (
    EXPAND,
    EXPAND_N,
    MAX_RANKED,
    MAX_SAMPLED,
    TEST,
    CompletionRequest,
    run_completion,
)
from cellang.completion.tables import (
    EVIDENCE_SETS,
    Metrics,
    completion_csv,
    completion_gmt,
    completion_metrics,
    evidence_note,
    evidence_shares,
    evidence_table,
    file_stem,
    gene_evidence,
    gene_evidence_table,
    metric_rows,
    prediction_table,
    table_csv,
)
from cellang.corpus import Corpus, load_corpus
from cellang.enrich import enrich_against_corpus, plain_reading, significance_note
from cellang.genes import load_resolver
from cellang.text import plural

# What the page imports: its support defined here, and what it takes from the library besides the public API
# (cl.*), in one list.
__all__ = [
    "EVIDENCE_SETS",
    "EXPAND",
    "EXPAND_N",
    "MAX_RANKED",
    "MAX_SAMPLED",
    "MAX_UPLOAD_BYTES",
    "MODES",
    "TEST",
    "CompletionError",
    "CompletionRequest",
    "CorpusResources",
    "PathwayCompleter",
    "UploadResult",
    "build_report",
    "evidence_note",
    "evidence_shares",
    "gene_evidence",
    "gene_evidence_table",
    "load_completer",
    "load_corpus",
    "load_resolver",
    "metric_rows",
    "network_legend",
    "pasted_input",
    "pathway_choices",
    "pathway_input",
    "pathway_label",
    "plural",
    "read_gene_file",
    "run_completion",
    "significance_note",
]

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
