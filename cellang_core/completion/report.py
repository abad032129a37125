"""Everything the Pathway completion page shows, computed here so the page only draws.

In:  what a person gives (pasted text, an uploaded file, a corpus pathway) and a :class:`Completion`.
Out: the gene list to complete (``split_genes``, ``read_gene_file``, ``pathway_choices``), the
     request as the completer takes it (``CompletionRequest``), and a :class:`CompletionReport`:
     prediction table, metrics, the co-membership network (graph + offline HTML), the enrichment
     table with its plain-English reading, and the CSV / GMT downloads.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from cellang_core.browse import search_corpus
from cellang_core.completion.completer import Completion, CompletionError, PathwayCompleter, masked_count
from cellang_core.completion.network import CoMembership, co_membership_graph, graph_summary, render_network_html
from cellang_core.corpus import Corpus, Pathway
from cellang_core.enrich import enrich_against_corpus, plain_reading
from cellang_core.genes import GeneResolver, load_resolver, split_genes
from cellang_core.gmt import GeneSet, gmt_bytes, parse_gmt
from cellang_core.stats import overlap_p_value
from cellang_core.text import MAX_SEED, out_of_range, plural

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# An upload is one gene list or a few sets, not a corpus: far below the corpus builder's 512 MiB, so a small
# .gz that expands to hundreds of MB is refused at once instead of parsed for a minute.
MAX_UPLOAD_DECOMPRESSED_BYTES = 20 * 1024 * 1024
MAX_INPUT_GENES = 2000
MAX_RANKED = 500  # genes a ranked completion may ask for
MAX_SAMPLED = 50  # sampling draws genes one at a time: more is slow on a CPU
MAX_CHOICES = 1000  # pathways offered in the selectbox
NETWORK_MAX_PREDICTED = 60  # predictions drawn in the network (best first)
NETWORK_MAX_PROMPT = 150  # above this, prompt genes without an edge are left out of the drawing
STATUSES = ("prompt", "recovered", "novel")
_HEADER_WORDS = {"gene", "genes", "symbol", "symbols", "gene_symbol", "gene_name", "hgnc_symbol"}


# --- input ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeneInput:
    """A gene list to complete, with the name and description its downloads will carry."""

    genes: tuple[str, ...]
    name: str
    description: str


@dataclass(frozen=True)
class UploadResult:
    gene_sets: list[GeneInput]
    problems: list[str]  # lines skipped or bytes replaced, in words


def _is_gmt(filename: str) -> bool:
    return filename.lower().endswith((".gmt", ".gmt.gz"))


def _gunzip(data: bytes, limit: int, filename: str) -> bytes:
    """Decompress at most ``limit`` bytes; a bigger or broken file is refused in words."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read(limit + 1)
    except (OSError, EOFError, zlib.error):
        raise CompletionError(f"{filename} is not a valid gzip file") from None
    if len(out) > limit:
        raise CompletionError(f"{filename} is over {_size(limit)} once decompressed; upload a shorter list.")
    return out


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1024 / 1024:.1f} MB" if n_bytes >= 1024 * 1024 else f"{n_bytes / 1024:.0f} kB"


def read_gene_file(filename: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES,
                   max_decompressed: int = MAX_UPLOAD_DECOMPRESSED_BYTES) -> UploadResult:
    """Gene sets from an uploaded file: a GMT (``.gmt`` or ``.gmt.gz``; read leniently, skipped lines
    reported) or a plain list, maybe gzipped (any separators; a header word like 'gene' is dropped).

    Raises :class:`CompletionError` for a file over ``max_bytes``, gzip content over ``max_decompressed``
    once decompressed, or a file with no genes.
    """
    if len(data) > max_bytes:
        raise CompletionError(f"{filename} is {_size(len(data))}; the limit is {_size(max_bytes)}. "
                              "Upload one gene set or a shorter list.")
    stem = re.sub(r"(\.(gmt|txt|tsv|csv|list))?(\.gz)?$", "", filename, flags=re.IGNORECASE) or "uploaded"
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, max_decompressed, filename)
    if _is_gmt(filename):
        result = parse_gmt(data, strict=False, source_name=filename)
        problems = [f"line {p.line_number}: {p.reason}" if p.line_number else p.reason for p in result.problems]
        if not result.gene_sets:
            raise CompletionError(f"no gene set could be read from {filename}: " + "; ".join(problems[:5]))
        sets = [GeneInput(s.genes, s.name, s.description or s.name) for s in result.gene_sets]
        return UploadResult(sets, problems)
    text = data.decode("utf-8-sig", errors="replace")
    problems = ["some bytes are not UTF-8 text and were replaced"] if "\ufffd" in text else []
    genes = split_genes(text)
    if genes and genes[0].lower() in _HEADER_WORDS:
        genes = genes[1:]
    if not genes:
        raise CompletionError(f"{filename} holds no gene identifiers")
    return UploadResult([GeneInput(tuple(genes), stem, f"genes uploaded from {filename}")], problems)


def pasted_input(text: str) -> GeneInput:
    return GeneInput(tuple(split_genes(text)), "pasted_genes", "genes pasted into cellang")


def pathway_input(pathway: Pathway) -> GeneInput:
    return GeneInput(pathway.genes, pathway.name, pathway.description)


@dataclass(frozen=True)
class PathwayChoices:
    pathways: list[Pathway]
    note: str  # harmonised-query note, or "" ; says when the list was cut
    total: int
    default_index: int = 0  # without a query: a mid-sized benchmark set, quick to complete and to read


def pathway_choices(corpus: Corpus, resolver: GeneResolver, query: str, limit: int = MAX_CHOICES) -> PathwayChoices:
    """Pathways to offer: without a query the benchmark sets (never trained on); with one, the
    search hits, held-out (test split) pathways first."""
    if not query.strip():
        hits, note = corpus.benchmark(), ""
    else:
        result = search_corpus(corpus, resolver, query)
        hits = sorted(result.hits, key=lambda p: (p.split != "test", not p.benchmark))
        note = result.note
    total = len(hits)
    if total > limit:
        note = (note + " " if note else "") + f"Showing the first {limit:,} of {len(hits):,} matches."
    hits = hits[:limit]
    default = 0 if query.strip() else next((i for i, p in enumerate(hits) if 15 <= len(p.genes) <= 60), 0)
    return PathwayChoices(hits, note, total, default)


def pathway_label(pathway: Pathway) -> str:
    held_out = "held out, never trained on" if pathway.split == "test" else "seen in training"
    return f"{pathway.name}: {pathway.description} ({len(pathway.genes)} genes; {held_out})"


# --- the request ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompletionRequest:
    """What the completer is asked; ``n`` 0 means as many as were masked (20 without masking);
    ``mask_ratio`` 0 means no masking (every gene is the prompt)."""

    genes: tuple[str, ...]
    mask_ratio: float = 0.8
    seed: int = 0
    n: int = 0
    mode: str = "ranked"
    temperature: float = 1.0
    top_k: int = 50
    n_samples: int = 8


def request_problems(request: CompletionRequest) -> list[str]:
    """Sentences naming each setting out of its range (empty when the request can run); the page shows
    them beside the Complete button instead of silently running with an earlier value."""
    limit = MAX_SAMPLED if request.mode == "sample" else MAX_RANKED
    checks = [out_of_range("Seed", request.seed, 0, MAX_SEED),
              out_of_range("Genes to predict", request.n, 0, limit),
              out_of_range("Mask ratio", request.mask_ratio, 0.0, 0.95)]
    if request.mode == "sample":
        checks += [out_of_range("Top-k", request.top_k, 1, 1000), out_of_range("Samples", request.n_samples, 1, 32),
                   out_of_range("Temperature", request.temperature, 0.1, 2.0)]
    return [problem for problem in checks if problem]


def planned_count(request: CompletionRequest, n_known: int) -> int:
    """How many genes will be predicted for ``n_known`` usable input genes."""
    if request.n:
        wanted = request.n
    elif request.mask_ratio > 0 and n_known >= 2:
        wanted = masked_count(n_known, request.mask_ratio)
    else:
        wanted = 20
    return min(wanted, MAX_SAMPLED if request.mode == "sample" else MAX_RANKED)


def run_completion(completer: PathwayCompleter, request: CompletionRequest,
                   resolver: GeneResolver | None = None) -> Completion:
    """Complete ``request.genes``; raises :class:`CompletionError` with a plain message when it cannot."""
    if not request.genes:
        raise CompletionError("no genes given: pick a pathway, paste genes or upload a file")
    problems = request_problems(request)
    if problems:
        raise CompletionError(" ".join(problems))
    if len(request.genes) > MAX_INPUT_GENES:
        raise CompletionError(f"{len(request.genes):,} identifiers given; at most {MAX_INPUT_GENES:,} "
                              "can be completed at once")
    mask_ratio = request.mask_ratio if request.mask_ratio > 0 else None
    resolver = resolver or load_resolver()
    known = [g for g in resolver.harmonise(request.genes).symbols if g in completer.vocabulary]
    count = planned_count(request, len(known))
    completion = completer.complete(
        request.genes, mask_ratio=mask_ratio, seed=request.seed, n=count, mode=request.mode,
        temperature=request.temperature, top_k=request.top_k, n_samples=request.n_samples, resolver=resolver,
    )
    wanted = request.n or len(completion.masked)
    if wanted > count:
        asked = f"{wanted} genes asked for" if request.n else f"{wanted} genes were held out"
        completion.notes.append(f"{asked}, but {request.mode} mode predicts at most {count} here; "
                                f"predicted {count}.")
    return completion


# --- the report -------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class Metrics:
    n_masked: int
    n_predicted: int
    overlap: int
    recall: float
    precision: float
    p_value: float
    universe: int


def completion_metrics(completion: Completion, universe: int) -> Metrics | None:
    """Recall, precision and the one-sided Fisher p of the overlap; None when nothing was held out."""
    if not completion.masked:
        return None
    overlap = len(completion.recovered)
    n_predicted, n_masked = len(completion.predictions), len(completion.masked)
    return Metrics(
        n_masked, n_predicted, overlap,
        recall=overlap / n_masked, precision=overlap / n_predicted if n_predicted else 0.0,
        p_value=overlap_p_value(overlap, n_predicted, n_masked, universe), universe=universe,
    )


def prediction_table(completion: Completion) -> pd.DataFrame:
    """rank, gene, score, status (recovered / novel) for each predicted gene, best first."""
    held_out = set(completion.masked)
    return pd.DataFrame(
        [{"rank": i, "gene": g, "score": s, "status": "recovered" if g in held_out else "novel"}
         for i, (g, s) in enumerate(completion.predictions, start=1)],
        columns=["rank", "gene", "score", "status"],
    )


CSV_COLUMNS = ["rank", "gene", "score", "status", "method", "mask_ratio", "seed"]


def completion_table(completion: Completion) -> pd.DataFrame:
    """The download, one row per gene: prompt genes (no rank, no score), predictions best first (rank 1..),
    then hidden genes that were not predicted (status ``missed``); every row also carries the method,
    mask ratio (0: nothing hidden) and seed, so the file alone says how it was made."""
    predicted = set(completion.genes)
    missed = [g for g in completion.masked if g not in predicted]
    blank = float("nan")
    rows = ([(blank, g, blank, "prompt") for g in completion.prompt]
            + [(r, g, s, t) for r, g, s, t in prediction_table(completion).itertuples(index=False)]
            + [(blank, g, blank, "missed") for g in missed])
    table = pd.DataFrame(rows, columns=CSV_COLUMNS[:4])
    table["rank"] = table["rank"].astype("Int64")
    table["method"] = completion.method
    table["mask_ratio"] = completion.mask_ratio or 0.0
    table["seed"] = completion.seed
    return table


def completion_csv(completion: Completion) -> bytes:
    buffer = io.StringIO()
    completion_table(completion).to_csv(buffer, index=False, float_format="%.6g", lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def safe_set_name(name: str, fallback: str = "cellang_completion") -> str:
    """A GMT-safe set name: control characters and tabs become spaces, whitespace is trimmed."""
    cleaned = re.sub(r"[\x00-\x1f\x7f-\x9f\ufeff]+", " ", name or "").strip()
    return cleaned or fallback


def file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "cellang"
    return stem[:80]


def completion_gmt(completion: Completion, name: str, description: str) -> bytes:
    """One GMT set: the prompt then the predictions, named after the input."""
    genes = tuple(dict.fromkeys([*completion.prompt, *completion.genes]))
    if not genes:
        raise CompletionError("nothing to write: the completion holds no genes")
    text = safe_set_name(f"{description} - completed by cellang {completion.method}", fallback="completed")
    return gmt_bytes([GeneSet(safe_set_name(name) + "_completed", text, genes)])


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
    )


def format_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def metric_rows(metrics: Metrics) -> Mapping[str, str]:
    """Label -> value for the page's metric tiles."""
    return {
        "Recall": f"{metrics.recall:.0%} ({metrics.overlap}/{metrics.n_masked})",
        "Precision": f"{metrics.precision:.0%} ({metrics.overlap}/{metrics.n_predicted})",
        "Overlap": plural(metrics.overlap, "gene"),
        "Fisher p (one-sided)": format_p(metrics.p_value),
    }
