"""Where a person's genes come from, before a completion: pasted text, an uploaded file, a corpus pathway.

In:  pasted text, an uploaded file's name and bytes (a gene list or a GMT, gzipped or not), or a corpus
     pathway and a search query.
Out: :class:`GeneInput` (the genes, with the name and description their downloads will carry), an
     :class:`UploadResult` with the problems met on the way, and the pathways a page offers
     (:func:`pathway_choices`). Uploads are bounded in size, compressed and expanded.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass

from cellang.browse import search_corpus
from cellang.completion.completer import CompletionError
from cellang.corpus import Corpus, Pathway
from cellang.genes import GeneResolver, split_genes
from cellang.gmt import parse_gmt

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# An upload is one gene list or a few sets, not a corpus: far below the corpus builder's 512 MiB, so a small
# .gz that expands to hundreds of MB is refused at once instead of parsed for a minute.
MAX_UPLOAD_DECOMPRESSED_BYTES = 20 * 1024 * 1024
MAX_CHOICES = 1000  # pathways offered in the selectbox
_HEADER_WORDS = {"gene", "genes", "symbol", "symbols", "gene_symbol", "gene_name", "hgnc_symbol"}


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
