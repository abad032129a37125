"""Gene identifiers: any symbol, previous symbol, alias, Ensembl or Entrez id -> approved symbol.

The gene table (``data/genes/genes.tsv.gz``) is built by ``cellang build corpus`` from the HGNC
table and org.Hs.eg.db. :class:`GeneResolver` answers, for each query, the approved symbol and
Ensembl id, and how it got there. It never guesses: a previous symbol or alias that points at
several current genes is reported as ambiguous with its candidates, and an unknown query as unknown.

Resolution order (the first rule that applies wins):
1. approved symbol, any case;
2. Ensembl gene id (``ENSG...``, version suffix ignored) or Entrez id (digits), when it belongs to
   exactly one gene, or to one HGNC-approved gene and otherwise only uncharacterised ``LOC`` entries of
   org.Hs.eg.db (which reuse the Ensembl id of the gene they overlap: TMPRSS2, TERF2IP, ANO5);
3. previous symbol, when it points at exactly one current gene;
4. alias symbol, when it points at exactly one current gene.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cellang.paths import GENE_TABLE

GENE_TABLE_COLUMNS = (
    "symbol", "ensembl_id", "entrez_id", "hgnc_id", "locus_type", "name",
    "previous_symbols", "alias_symbols",
)
_ENSEMBL = re.compile(r"^ENSG\d{11}(\.\d+)?$", re.IGNORECASE)
_ENTREZ = re.compile(r"^\d+$")


_SEPARATORS = re.compile(r"[\s,;|]+")
_QUOTES = "\"'`"


def split_genes(text: str) -> list[str]:
    """Identifiers in ``text`` separated by any mix of spaces, tabs, newlines, commas, semicolons or
    bars; surrounding quotes are dropped, order kept, repeats kept (harmonisation drops them)."""
    tokens = (token.strip(_QUOTES) for token in _SEPARATORS.split(text or ""))
    return [token for token in tokens if token]


@dataclass(frozen=True)
class GeneRecord:
    """One current gene. ``previous_symbols`` and ``alias_symbols`` are tuples of symbols."""

    symbol: str
    ensembl_id: str
    entrez_id: str
    hgnc_id: str
    locus_type: str
    name: str
    previous_symbols: tuple[str, ...] = ()
    alias_symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class GeneMatch:
    """The answer for one query.

    ``how`` is one of ``approved``, ``ensembl``, ``entrez``, ``previous``, ``alias`` (mapped),
    ``ambiguous`` (``candidates`` lists the current symbols it could mean) or ``unknown``.
    """

    query: str
    symbol: str | None
    ensembl_id: str | None
    how: str
    candidates: tuple[str, ...] = ()

    @property
    def mapped(self) -> bool:
        return self.symbol is not None


@dataclass
class Harmonisation:
    """Matches for a list of queries, in input order, with summaries for reporting."""

    matches: list[GeneMatch] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        """Approved symbols of the mapped queries, first occurrence order, without repeats."""
        return list(dict.fromkeys(m.symbol for m in self.matches if m.symbol is not None))

    @property
    def unknown(self) -> list[str]:
        return [m.query for m in self.matches if m.how == "unknown"]

    @property
    def ambiguous(self) -> dict[str, tuple[str, ...]]:
        return {m.query: m.candidates for m in self.matches if m.how == "ambiguous"}

    @property
    def renamed(self) -> dict[str, str]:
        """Queries that mapped to a different approved symbol (previous, alias, ids, case)."""
        return {m.query: m.symbol for m in self.matches if m.symbol is not None and m.symbol != m.query}

    @property
    def repeats(self) -> int:
        """Mapped queries that name a gene an earlier query already named (exact repeats, or an alias
        and its symbol): each gene counts once."""
        return sum(m.symbol is not None for m in self.matches) - len(self.symbols)

    @property
    def fraction_mapped(self) -> float:
        return sum(m.mapped for m in self.matches) / len(self.matches) if self.matches else 0.0

    def summary(self) -> str:
        """One plain sentence for the CLI and the app."""
        parts = [f"{sum(m.mapped for m in self.matches)} of {len(self.matches)} identifiers mapped"]
        if self.renamed:
            parts.append(f"{len(self.renamed)} renamed to approved symbols")
        if self.ambiguous:
            shown = ", ".join(f"{q} ({'/'.join(c)})" for q, c in list(self.ambiguous.items())[:5])
            parts.append(f"{len(self.ambiguous)} ambiguous: {shown}")
        if self.unknown:
            shown = ", ".join(self.unknown[:10]) + (" ..." if len(self.unknown) > 10 else "")
            parts.append(f"{len(self.unknown)} unknown: {shown}")
        return "; ".join(parts) + "."


class GeneResolver:
    """Maps gene identifiers to approved symbols using a gene table."""

    def __init__(self, records: Iterable[GeneRecord]):
        self.records: dict[str, GeneRecord] = {}
        self._approved: dict[str, str] = {}
        ensembl: dict[str, set[str]] = defaultdict(set)
        entrez: dict[str, set[str]] = defaultdict(set)
        previous: dict[str, set[str]] = defaultdict(set)
        alias: dict[str, set[str]] = defaultdict(set)
        for record in records:
            if record.symbol.upper() in self._approved:
                raise ValueError(f"gene table lists {record.symbol!r} twice")
            self.records[record.symbol] = record
            self._approved[record.symbol.upper()] = record.symbol
            for ensembl_id in record.ensembl_id.split("|") if record.ensembl_id else ():
                ensembl[ensembl_id.upper()].add(record.symbol)
            if record.entrez_id:
                entrez[record.entrez_id].add(record.symbol)
            for old in record.previous_symbols:
                previous[old.upper()].add(record.symbol)
            for other in record.alias_symbols:
                alias[other.upper()].add(record.symbol)
        self._ensembl = {key: tuple(sorted(value)) for key, value in ensembl.items()}
        self._entrez = {key: tuple(sorted(value)) for key, value in entrez.items()}
        self._previous = {key: tuple(sorted(value)) for key, value in previous.items()}
        self._alias = {key: tuple(sorted(value)) for key, value in alias.items()}

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol in self.records

    @lru_cache(maxsize=200_000)
    def resolve(self, query: str) -> GeneMatch:
        """Resolve one identifier; surrounding whitespace is ignored."""
        text = query.strip()
        key = text.upper()
        if not text:
            return GeneMatch(query, None, None, "unknown")
        if key in self._approved:
            return self._match(query, self._approved[key], "approved")
        if _ENSEMBL.match(text):
            return self._from_index(query, self._approved_over_loc(self._ensembl.get(key.split(".")[0])), "ensembl")
        if _ENTREZ.match(text):
            return self._from_index(query, self._entrez.get(text), "entrez")
        for how, index in (("previous", self._previous), ("alias", self._alias)):
            if key in index:
                return self._from_index(query, index[key], how)
        return GeneMatch(query, None, None, "unknown")

    def _approved_over_loc(self, candidates: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """The one HGNC-approved candidate when every other is an uncharacterised LOC entry; else all of them."""
        if not candidates or len(candidates) < 2:
            return candidates
        approved = [c for c in candidates if self.records[c].hgnc_id]
        others = [c for c in candidates if not self.records[c].hgnc_id]
        if len(approved) == 1 and all(c.startswith("LOC") for c in others):
            return (approved[0],)
        return candidates

    def _from_index(self, query: str, candidates: tuple[str, ...] | None, how: str) -> GeneMatch:
        """One candidate maps; several are reported as ambiguous; none is unknown."""
        if not candidates:
            return GeneMatch(query, None, None, "unknown")
        if len(candidates) > 1:
            return GeneMatch(query, None, None, "ambiguous", candidates)
        return self._match(query, candidates[0], how)

    def _match(self, query: str, symbol: str, how: str) -> GeneMatch:
        return GeneMatch(query, symbol, self.records[symbol].ensembl_id.split("|")[0] or None, how)

    def harmonise(self, queries: Iterable[str]) -> Harmonisation:
        """Resolve every query; see :class:`Harmonisation` for the summaries."""
        return Harmonisation([self.resolve(str(q)) for q in queries])


def write_gene_table(records: Sequence[GeneRecord], path: Path) -> None:
    """Write records as a deterministic gzip TSV (sorted by symbol, mtime 0)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(GENE_TABLE_COLUMNS)
    for record in sorted(records, key=lambda r: r.symbol):
        writer.writerow([
            record.symbol, record.ensembl_id, record.entrez_id, record.hgnc_id, record.locus_type,
            record.name, "|".join(record.previous_symbols), "|".join(record.alias_symbols),
        ])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue().encode("utf-8"))
    partial.replace(path)


def read_gene_table(path: Path) -> list[GeneRecord]:
    """Read a table written by :func:`write_gene_table`."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = tuple(next(reader))
        if header != GENE_TABLE_COLUMNS:
            raise ValueError(f"{path.name}: unexpected columns {header}")
        return [
            GeneRecord(row[0], row[1], row[2], row[3], row[4], row[5],
                       tuple(filter(None, row[6].split("|"))), tuple(filter(None, row[7].split("|"))))
            for row in reader
        ]


# What the deletion workflow perturbs by default (pseudogenes and other types are opt-in).
GENE_TYPES = ("protein-coding", "lncRNA", "pseudogene", "other")
_TYPE_OF_LOCUS = {"gene with protein product": "protein-coding", "protein-coding": "protein-coding",
                  "RNA, long non-coding": "lncRNA", "pseudogene": "pseudogene", "pseudo": "pseudogene",
                  "immunoglobulin pseudogene": "pseudogene", "T cell receptor pseudogene": "pseudogene"}


def gene_type(locus_type: str) -> str:
    """The broad type of a gene table locus type: protein-coding, lncRNA, pseudogene or other."""
    return _TYPE_OF_LOCUS.get(locus_type, "other")


def gene_types_of(symbols: Iterable[str], resolver: GeneResolver | None = None) -> dict[str, str | None]:
    """Each approved symbol's broad type (:func:`gene_type`); None for a symbol the gene table does not hold."""
    resolver = resolver or load_resolver()
    return {s: gene_type(resolver.records[s].locus_type) if s in resolver.records else None for s in symbols}


@lru_cache(maxsize=4)
def load_resolver(path: Path = GENE_TABLE) -> GeneResolver:
    """The resolver over the shipped gene table (loaded once per process)."""
    if not path.exists():
        raise FileNotFoundError(
            f"gene table {path.name} is missing: run `cellang build corpus` to build it"
        )
    return GeneResolver(read_gene_table(path))
