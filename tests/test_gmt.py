"""Tests for cellang.gmt: GMT parsing, writing, gzip and fuzzing."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellang import gmt
from cellang.gmt import (
    GeneSet,
    GmtFormatError,
    GmtProblem,
    format_gmt,
    gmt_bytes,
    parse_gmt,
    read_gmt,
    write_gmt,
)

GOOD = "SET_A\tfirst set\tTP53\tBRCA1\nSET_B\thttp://x\tEGFR\n"
GOOD_SETS = [
    GeneSet("SET_A", "first set", ("TP53", "BRCA1")),
    GeneSet("SET_B", "http://x", ("EGFR",)),
]
MISSING_2 = "missing fields: need name, description and genes separated by tabs, found 2 fields"
MISSING_1 = "missing fields: need name, description and genes separated by tabs, found 1 field"

# (bad line placed as line 2 between two good sets, expected reason)
BAD_LINES = [
    ("ONLY_NAME\tdesc", MISSING_2),
    ("ONLY_NAME", MISSING_1),
    ("NO_GENES\tdesc\t\t\t", gmt.REASON_EMPTY_SET),
    ("NO_GENES\tdesc\t", gmt.REASON_EMPTY_SET),
    ("BLANK_GENES\tdesc\t \t  \t", gmt.REASON_EMPTY_SET),
    ("\tdesc\tTP53", gmt.REASON_EMPTY_NAME),
    ("   \tdesc\tTP53", gmt.REASON_EMPTY_NAME),
    ("SET_A\tagain\tKRAS", "duplicate gene-set name 'SET_A' (first seen on line 1)"),
    ("BELL\x07\tdesc\tTP53", "control character U+0007 in gene-set name"),
    ("NUL\tde\x00sc\tTP53", "control character U+0000 in description"),
    ("CTRL\tdesc\tTP53\tKR\x1bAS", "control character U+001B in gene #2"),
    ("C1\tdesc\tTP\x8553", "control character U+0085 in gene #1"),
    ("BOM\tdesc\t\ufeffTP53", "byte-order mark U+FEFF in gene #1"),
]


def _with_bad(line: str) -> str:
    return f"SET_A\tfirst set\tTP53\n{line}\nSET_C\tthird\tMYC\n"


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_bad_line_strict_reports_line_and_reason(line: str, reason: str) -> None:
    with pytest.raises(GmtFormatError) as caught:
        parse_gmt(_with_bad(line))
    assert (caught.value.line_number, caught.value.reason) == (2, reason)
    assert str(caught.value) == f"line 2: {reason}"


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_bad_line_lenient_skips_and_reports(line: str, reason: str) -> None:
    result = parse_gmt(_with_bad(line), strict=False)
    assert [s.name for s in result.gene_sets] == ["SET_A", "SET_C"]
    assert result.problems == [GmtProblem(2, reason, line)]


def test_bad_utf8_line_strict_and_lenient() -> None:
    data = b"A\td\tX\nB\td\t\xff\xfeY\nC\td\tZ\n"
    with pytest.raises(GmtFormatError) as caught:
        parse_gmt(data, source_name="upload.gmt")
    assert (caught.value.line_number, caught.value.reason) == (2, gmt.REASON_BAD_ENCODING)
    assert str(caught.value) == f"upload.gmt, line 2: {gmt.REASON_BAD_ENCODING}"
    result = parse_gmt(data, strict=False)
    assert [s.name for s in result.gene_sets] == ["A", "C"]
    assert result.problems == [GmtProblem(2, gmt.REASON_BAD_ENCODING, "B\td\t\ufffd\ufffdY")]


def test_lone_surrogate_in_text_is_bad_encoding() -> None:
    with pytest.raises(GmtFormatError) as caught:
        parse_gmt("A\td\tX\nB\td\t\udc80\n")
    assert (caught.value.line_number, caught.value.reason) == (2, gmt.REASON_BAD_ENCODING)


def test_problem_text_is_truncated() -> None:
    line = "LONG\tdesc\t" + "\t" * 500
    (problem,) = parse_gmt(f"A\td\tX\n{line}\n", strict=False).problems
    assert problem.text == line[:200] and len(problem.text) == 200


def test_error_message_names_source_and_pickles() -> None:
    error = GmtFormatError(7, "duplicate gene-set name 'X' (first seen on line 3)", "upload.gmt")
    assert str(error) == "upload.gmt, line 7: duplicate gene-set name 'X' (first seen on line 3)"
    assert isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.line_number, again.reason, str(again)) == (7, error.reason, str(error))


@pytest.mark.parametrize("data", ["", b"", "\n\n", "\r\n  \t\t\n", b"\xef\xbb\xbf", "\ufeff\n"])
def test_empty_input(data: str | bytes) -> None:
    with pytest.raises(GmtFormatError) as caught:
        parse_gmt(data, source_name="up.gmt")
    assert (caught.value.line_number, caught.value.reason) == (0, gmt.REASON_NO_SETS)
    assert str(caught.value) == f"up.gmt: {gmt.REASON_NO_SETS}"
    result = parse_gmt(data, strict=False)
    assert result.gene_sets == [] and result.problems == [GmtProblem(0, gmt.REASON_NO_SETS, "")]


def test_only_bad_lines_lenient_reports_no_sets_last() -> None:
    result = parse_gmt("A\td\nB\td\t\n", strict=False)
    assert result.gene_sets == []
    assert [(p.line_number, p.reason) for p in result.problems] == [
        (1, MISSING_2), (2, gmt.REASON_EMPTY_SET), (0, gmt.REASON_NO_SETS)
    ]


def test_messy_real_world_file() -> None:
    data = (
        b"\xef\xbb\xbfSET_A\tfirst set\tTP53\t \tBRCA1\tTP53\t\t\t\r\n"
        b"\r\n   \r\n"
        b"SET_B\thttp://x\t\t EGFR\tEGFR\t EGFR\t\r\n"
        b"SET_C\t\tMYC\r"  # bare CR line ending, empty description
        b"SET_D\tunicode \xc3\xa9\xe2\x80\xa8\tG\xc3\xa8ne\n\n"
    )
    result = parse_gmt(data)
    assert result.problems == []
    assert result.gene_sets == [
        GeneSet("SET_A", "first set", ("TP53", "BRCA1")),
        GeneSet("SET_B", "http://x", (" EGFR", "EGFR")),
        GeneSet("SET_C", "", ("MYC",)),
        GeneSet("SET_D", "unicode \u00e9\u2028", ("G\u00e8ne",)),
    ]


def test_line_numbers_count_blank_and_crlf_lines() -> None:
    with pytest.raises(GmtFormatError) as caught:
        parse_gmt(b"A\td\tX\r\n\r\n\r\nB\td\r\n")
    assert caught.value.line_number == 4


def test_canonical_round_trip_text() -> None:
    assert parse_gmt(GOOD).gene_sets == GOOD_SETS
    assert format_gmt(GOOD_SETS) == GOOD
    assert format_gmt(parse_gmt(GOOD).gene_sets) == GOOD
    assert gmt_bytes(GOOD_SETS) == GOOD.encode("utf-8")


@pytest.mark.parametrize(
    "bad",
    [
        [GeneSet("", "d", ("X",))],
        [GeneSet("  ", "d", ("X",))],
        [GeneSet("A\tB", "d", ("X",))],
        [GeneSet("A", "line\nbreak", ("X",))],
        [GeneSet("A", "d", ("X\r",))],
        [GeneSet("A", "d", ("X\x00",))],
        [GeneSet("\ufeffA", "d", ("X",))],
        [GeneSet("A", "d", ("\udc80",))],
        [GeneSet("A", "d", ())],
        [GeneSet("A", "d", ("X", ""))],
        [GeneSet("A", "d", ("X", "X"))],
        [GeneSet("A", "d", ("X",)), GeneSet("A", "e", ("Y",))],
        [],
    ],
)
def test_format_rejects_unwritable_sets(bad: list[GeneSet], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        format_gmt(bad)
    with pytest.raises(ValueError):
        write_gmt(bad, tmp_path / "out.gmt")
    assert list(tmp_path.iterdir()) == []


def test_format_rejects_wrong_types() -> None:
    with pytest.raises(TypeError):
        format_gmt([GeneSet("A", "d", (1,))])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_gmt([("A", "d", ("X",))])  # type: ignore[list-item]


def test_gzip_bytes_are_deterministic_and_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    first = gmt_bytes(GOOD_SETS, compress=True)
    monkeypatch.setattr("time.time", lambda: 1.0e9)
    second = gmt_bytes(GOOD_SETS, compress=True)
    assert first == second
    assert first[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no flags (so no file name)
    assert first[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.decompress(first) == GOOD.encode("utf-8")
    assert parse_gmt(first).gene_sets == GOOD_SETS


def test_write_and_read_gzip_by_suffix(tmp_path: Path) -> None:
    one, two = tmp_path / "one.gmt.gz", tmp_path / "two.GMT.GZ"
    write_gmt(GOOD_SETS, one)
    write_gmt(GOOD_SETS, str(two))
    assert one.read_bytes() == two.read_bytes() == gmt_bytes(GOOD_SETS, compress=True)
    assert read_gmt(one).gene_sets == GOOD_SETS
    write_gmt(GOOD_SETS, tmp_path / "plain.gmt")
    assert (tmp_path / "plain.gmt").read_bytes() == GOOD.encode("utf-8")


def test_gzip_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    (tmp_path / "packed.gmt").write_bytes(gzip.compress(GOOD.encode("utf-8")))
    (tmp_path / "plain.gmt.gz").write_bytes(GOOD.encode("utf-8"))
    assert read_gmt(tmp_path / "packed.gmt").gene_sets == GOOD_SETS
    assert read_gmt(tmp_path / "plain.gmt.gz").gene_sets == GOOD_SETS


@pytest.mark.parametrize(
    "data", [b"\x1f\x8bnot gzip at all", gzip.compress(GOOD.encode())[:-6], b"\x1f\x8b"]
)
def test_broken_gzip(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "broken.gmt.gz"
    path.write_bytes(data)
    with pytest.raises(GmtFormatError) as caught:
        read_gmt(path)
    assert (caught.value.line_number, caught.value.reason) == (0, gmt.REASON_BAD_GZIP)
    assert str(caught.value) == f"broken.gmt.gz: {gmt.REASON_BAD_GZIP}"
    result = read_gmt(path, strict=False)
    assert result.gene_sets == [] and result.problems == [GmtProblem(0, gmt.REASON_BAD_GZIP, "")]


def test_read_gmt_names_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "upload.gmt"
    path.write_text("A\td\tX\nA\td\tY\n", encoding="utf-8")
    with pytest.raises(GmtFormatError, match=r"^upload\.gmt, line 2: duplicate gene-set name"):
        read_gmt(path)


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sets.gmt"
    target.write_text("old content\n", encoding="utf-8")
    write_gmt(GOOD_SETS, target)
    assert target.read_text(encoding="utf-8") == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sets.gmt"]


def test_failed_write_keeps_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "sets.gmt"
    target.write_text("old content\n", encoding="utf-8")

    def crash(src: str, dst: str) -> None:
        assert Path(src).parent == tmp_path and Path(src).read_bytes() == GOOD.encode()
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        write_gmt(GOOD_SETS, target)
    assert target.read_text(encoding="utf-8") == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sets.gmt"]


# ---------------------------------------------------------------- property-based tests

FUZZ = settings(max_examples=300, derandomize=True, deadline=None)
GMT_ISH_TEXT = st.text(alphabet="ab \t\t\n\r\x00\x07\ufeff\u00e9\udc80", max_size=60)
GMT_ISH_BYTES = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=100).map(lambda b: b"\x1f\x8b" + b),
    st.binary(max_size=100).map(gzip.compress),
    GMT_ISH_TEXT.map(lambda t: t.encode("utf-8", "replace")),
    st.binary(max_size=100).map(lambda b: b"A\td\tX\n" + b),
)


@FUZZ
@given(st.one_of(GMT_ISH_BYTES, st.text(max_size=200), GMT_ISH_TEXT))
def test_fuzz_strict_returns_or_raises_format_error(data: bytes | str) -> None:
    try:
        result = parse_gmt(data)
    except GmtFormatError as error:
        assert error.line_number >= 0 and error.reason
    else:
        assert result.gene_sets and result.problems == []


@FUZZ
@given(st.one_of(GMT_ISH_BYTES, GMT_ISH_TEXT))
def test_fuzz_lenient_never_raises(data: bytes | str) -> None:
    result = parse_gmt(data, strict=False)
    assert result.gene_sets or result.problems  # an empty result always says why
    assert all(len(p.text) <= 200 and p.line_number >= 0 for p in result.problems)
    if result.gene_sets:  # what lenient keeps can always be written and read back
        assert parse_gmt(format_gmt(result.gene_sets)).gene_sets == result.gene_sets


FIELD_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufeff")
NAMES = st.text(FIELD_CHARS, min_size=1, max_size=12).filter(str.strip)
GENE_SETS = st.lists(
    st.builds(
        GeneSet,
        name=NAMES,
        description=st.text(FIELD_CHARS, max_size=12),
        genes=st.lists(NAMES, min_size=1, max_size=6, unique=True).map(tuple),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda s: s.name,
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(GENE_SETS, st.booleans())
def test_round_trip_generated_sets(sets: list[GeneSet], compress: bool) -> None:
    text = format_gmt(sets)
    assert parse_gmt(text).gene_sets == sets
    assert parse_gmt(gmt_bytes(sets, compress=compress)).gene_sets == sets
    assert format_gmt(parse_gmt(text).gene_sets) == text
    assert parse_gmt(text.replace("\n", "\r\n")).gene_sets == sets


def test_gzip_larger_than_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = "".join(f"SET_{i}\tdesc\tG{i}\n" for i in range(100)).encode()
    compressed = gzip.compress(payload)
    assert gmt._bounded_gunzip(compressed, len(payload)) == payload
    with pytest.raises(gmt._TooLarge):
        gmt._bounded_gunzip(compressed, len(payload) - 1)

    # parse_gmt reads the module constant at call time, so a small limit can stand in for 512 MiB
    monkeypatch.setattr(gmt, "MAX_DECOMPRESSED_BYTES", len(payload) - 1)
    with pytest.raises(GmtFormatError) as caught:
        parse_gmt(compressed, source_name="bomb.gmt.gz")
    assert (caught.value.line_number, caught.value.reason) == (0, gmt.REASON_TOO_LARGE)
    assert str(caught.value) == f"bomb.gmt.gz: {gmt.REASON_TOO_LARGE}"
    lenient = parse_gmt(compressed, strict=False)
    assert lenient.gene_sets == []
    assert lenient.problems == [GmtProblem(0, gmt.REASON_TOO_LARGE, "")]

    monkeypatch.setattr(gmt, "MAX_DECOMPRESSED_BYTES", len(payload))
    assert len(parse_gmt(compressed).gene_sets) == 100
