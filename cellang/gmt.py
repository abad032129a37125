"""Read and write GMT gene-set files.

A GMT file holds one gene set per line, tab-separated: set name, description, then
one gene per field. The reader is forgiving about what real files contain: trailing
tabs and blank gene fields are ignored, ``\\r\\n`` and bare ``\\r`` line endings are
accepted, blank lines are skipped, a leading UTF-8 byte-order mark is dropped, a gene
repeated within one set keeps its first occurrence, and gzip data is recognised by
its magic bytes whatever the file is called. Everything else is kept verbatim (no
whitespace stripping, no case folding), so writing and reading back is exact.

Lines that cannot be read (see :func:`parse_gmt`) either stop the read (strict mode,
:class:`GmtFormatError`) or are skipped and listed as :class:`GmtProblem` (lenient).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import secrets
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cellang.errors import CellangError

__all__ = [
    "GeneSet", "GmtFormatError", "GmtProblem", "GmtReadResult",
    "format_gmt", "gmt_bytes", "parse_gmt", "read_gmt", "write_gmt",
]

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_MAX_TEXT = 200  # GmtProblem.text is cut to this many characters
_MAX_SHOWN = 60  # names quoted in reasons are cut to this many characters
_NEWLINE_BYTES = re.compile(rb"\r\n|\r|\n")
_NEWLINE_TEXT = re.compile(r"\r\n|\r|\n")
# Control characters (Unicode category Cc) other than tab, plus the byte-order mark.
_FORBIDDEN_READ = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ufeff]")
# What a written field must not contain: the above, tab, and lone surrogates.
_FORBIDDEN_WRITE = re.compile(r"[\x00-\x1f\x7f-\x9f\ufeff\ud800-\udfff]")

REASON_NO_SETS = "no gene sets found"
REASON_BAD_GZIP = "not a valid gzip file"
REASON_BAD_ENCODING = "bad encoding: line is not valid UTF-8"
REASON_EMPTY_NAME = "empty gene-set name"
REASON_EMPTY_SET = "empty gene set: no genes after the description"
_MISSING_FIELDS = "missing fields: need name, description and genes separated by tabs"


@dataclass(frozen=True)
class GeneSet:
    """One gene set: its name, a free-text description and its genes in file order."""

    name: str
    description: str
    genes: tuple[str, ...]


class GmtFormatError(CellangError, ValueError):
    """A GMT input that strict mode refuses.

    ``line_number`` is 1-based; 0 means the problem concerns the whole input (not a
    valid gzip file, no gene sets found). ``reason`` says what is wrong, and
    ``source_name`` (optional) names the input, e.g. an uploaded file's name.
    """

    def __init__(self, line_number: int, reason: str, source_name: str | None = None) -> None:
        super().__init__(line_number, reason, source_name)
        self.line_number = line_number
        self.reason = reason
        self.source_name = source_name

    def __str__(self) -> str:
        where = [self.source_name] if self.source_name else []
        if self.line_number > 0:
            where.append(f"line {self.line_number}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


@dataclass(frozen=True)
class GmtProblem:
    """A line that lenient mode skipped: 1-based line number (0: whole input), why, and
    the offending line (cut to 200 characters; undecodable bytes shown as U+FFFD)."""

    line_number: int
    reason: str
    text: str


@dataclass(frozen=True)
class GmtReadResult:
    """The gene sets read, in file order, and the problems met (empty in strict mode)."""

    gene_sets: list[GeneSet]
    problems: list[GmtProblem]


def _show(text: str) -> str:
    """Quote a name for an error message, cut to a readable length."""
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


def _split_lines(data: bytes | str) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line number, decoded line or None if not valid UTF-8, display text)."""
    if isinstance(data, bytes):
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM) :]
        for number, raw in enumerate(_NEWLINE_BYTES.split(data), start=1):
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError:
                yield number, None, raw.decode("utf-8", errors="replace")
    else:
        if data.startswith("\ufeff"):
            data = data[1:]
        for number, line in enumerate(_NEWLINE_TEXT.split(data), start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: no UTF-8 form
                yield number, None, line.encode("utf-8", "replace").decode("utf-8")
            else:
                yield number, line, ""


def _forbidden_reason(line: str, position: int) -> str:
    """Name the forbidden character at ``position`` and the field it sits in."""
    field = line.count("\t", 0, position)
    where = ("gene-set name", "description")[field] if field < 2 else f"gene #{field - 1}"
    code = ord(line[position])
    kind = "byte-order mark" if code == 0xFEFF else "control character"
    return f"{kind} U+{code:04X} in {where}"


def _parse_line(line: str) -> tuple[str | None, GeneSet | None]:
    """Return (reason, None) for a bad line, (None, None) for a blank one, else (None, set)."""
    found = _FORBIDDEN_READ.search(line)
    if found:
        return _forbidden_reason(line, found.start()), None
    if not line.strip():
        return None, None
    fields = line.split("\t")
    if len(fields) < 3:
        plural = "s" if len(fields) != 1 else ""
        return f"{_MISSING_FIELDS}, found {len(fields)} field{plural}", None
    name, description = fields[0], fields[1]
    if not name.strip():
        return REASON_EMPTY_NAME, None
    genes = tuple(dict.fromkeys(gene for gene in fields[2:] if gene.strip()))
    if not genes:
        return REASON_EMPTY_SET, None
    return None, GeneSet(name, description, genes)


MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024
REASON_TOO_LARGE = f"gzip content larger than {MAX_DECOMPRESSED_BYTES // (1024 * 1024)} MiB once decompressed"


class _TooLarge(Exception):
    pass


def _bounded_gunzip(data: bytes, limit: int) -> bytes:
    """gunzip that stops past ``limit`` bytes, so a tiny 'gzip bomb' cannot exhaust memory."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
        out = handle.read(limit + 1)
    if len(out) > limit:
        raise _TooLarge
    return out


def parse_gmt(
    data: bytes | str, *, strict: bool = True, source_name: str | None = None
) -> GmtReadResult:
    """Parse GMT content (text, UTF-8 bytes, or gzip-compressed bytes) into gene sets.

    A line is bad when it is not valid UTF-8, contains a control character other
    than tab (or a byte-order mark), has fewer than three fields, has a blank name,
    has no non-blank gene, or repeats an earlier set's name (the later line is bad).
    An input with no valid set is bad as a whole (line 0, "no gene sets found"), and
    so is gzip data that does not decompress (line 0, "not a valid gzip file").

    Strict mode raises :class:`GmtFormatError` at the first bad line; lenient mode
    (``strict=False``) skips bad lines, lists each in ``problems`` and never raises
    for any content. ``source_name`` is only used in error messages.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, (bytes, str)):
        raise TypeError(f"parse_gmt expects bytes or str, not {type(data).__name__}")
    problems: list[GmtProblem] = []

    def bad(line_number: int, reason: str, text: str) -> None:
        if strict:
            raise GmtFormatError(line_number, reason, source_name)
        problems.append(GmtProblem(line_number, reason, text[:_MAX_TEXT]))

    if isinstance(data, bytes) and data.startswith(_GZIP_MAGIC):
        try:
            data = _bounded_gunzip(data, MAX_DECOMPRESSED_BYTES)
        except (OSError, EOFError, zlib.error):
            bad(0, REASON_BAD_GZIP, "")
            return GmtReadResult([], problems)
        except _TooLarge:
            bad(0, REASON_TOO_LARGE, "")
            return GmtReadResult([], problems)

    gene_sets: list[GeneSet] = []
    first_seen: dict[str, int] = {}
    for number, line, display in _split_lines(data):
        if line is None:
            bad(number, REASON_BAD_ENCODING, display)
            continue
        reason, gene_set = _parse_line(line)
        if reason is not None:
            bad(number, reason, line)
        elif gene_set is not None:
            first = first_seen.setdefault(gene_set.name, number)
            if first != number:
                shown = _show(gene_set.name)
                bad(number, f"duplicate gene-set name {shown} (first seen on line {first})", line)
            else:
                gene_sets.append(gene_set)
    if not gene_sets:
        bad(0, REASON_NO_SETS, "")
    return GmtReadResult(gene_sets, problems)


def read_gmt(path: str | os.PathLike[str], *, strict: bool = True) -> GmtReadResult:
    """Read a GMT file (plain or gzip, detected from its content) with :func:`parse_gmt`.

    The file's name is used as ``source_name``. OSError (e.g. file not found) passes
    through unchanged.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    return parse_gmt(data, strict=strict, source_name=os.path.basename(os.fsdecode(path)))


def _check_writable(gene_set: GeneSet) -> None:
    """Raise if ``gene_set`` cannot be written so that it reads back unchanged."""
    if not isinstance(gene_set, GeneSet):
        raise TypeError(f"expected GeneSet, not {type(gene_set).__name__}")
    fields = [gene_set.name, gene_set.description, *gene_set.genes]
    if not all(isinstance(field, str) for field in fields):
        raise TypeError(f"gene set {_show(str(gene_set.name))}: every field must be a str")
    label = f"gene set {_show(gene_set.name)}"
    if not gene_set.name.strip():
        raise ValueError(f"{label}: empty name")
    for field in fields:
        found = _FORBIDDEN_WRITE.search(field)
        if found:
            raise ValueError(
                f"{label}: field {_show(field)} contains tab, line break, control "
                f"character or surrogate U+{ord(found.group()):04X}"
            )
    if not gene_set.genes:
        raise ValueError(f"{label}: no genes")
    if not all(gene.strip() for gene in gene_set.genes):
        raise ValueError(f"{label}: blank gene name")
    if len(set(gene_set.genes)) != len(gene_set.genes):
        raise ValueError(f"{label}: a gene appears twice")


def format_gmt(gene_sets: Iterable[GeneSet]) -> str:
    """Return the canonical GMT text for ``gene_sets``: one line per set, fields joined
    by tabs, ``\\n`` line endings and a trailing newline.

    Raises ValueError when there are no sets or a set cannot be written faithfully:
    blank name, tab/line break/control character in a field, no genes, a blank or
    repeated gene, or a name already used by an earlier set.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for gene_set in gene_sets:
        _check_writable(gene_set)
        if gene_set.name in seen:
            raise ValueError(f"duplicate gene-set name {_show(gene_set.name)}")
        seen.add(gene_set.name)
        lines.append("\t".join((gene_set.name, gene_set.description, *gene_set.genes)))
    if not lines:
        raise ValueError("no gene sets to write")
    return "\n".join(lines) + "\n"


def gmt_bytes(gene_sets: Iterable[GeneSet], *, compress: bool = False) -> bytes:
    """Return :func:`format_gmt` output as UTF-8 bytes, gzip-compressed if ``compress``.

    The gzip header carries mtime 0 and no file name, so equal input gives equal bytes.
    """
    payload = format_gmt(gene_sets).encode("utf-8")
    if not compress:
        return payload
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    return buffer.getvalue()


def write_gmt(gene_sets: Iterable[GeneSet], path: str | os.PathLike[str]) -> None:
    """Write ``gene_sets`` to ``path`` (gzip when the name ends with ".gz").

    The content is checked before anything touches the disk, then written to a
    temporary file in the same folder and moved into place with ``os.replace``, so
    ``path`` only ever holds the old content or the complete new one.
    """
    target = os.fsdecode(path)
    payload = gmt_bytes(gene_sets, compress=target.lower().endswith(".gz"))
    folder = os.path.dirname(os.path.abspath(target))
    temp = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temp, flags, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if os.name == "posix":  # make the rename itself durable; best effort
        with contextlib.suppress(OSError):
            folder_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(folder_fd)
            finally:
                os.close(folder_fd)
