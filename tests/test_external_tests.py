"""The outside-the-corpus test files: read by the extended corpus's readers, harmonised and QC'd as the corpus is,
written as GMT with a manifest. The sources are replaced by a few raw sets (no download)."""

from __future__ import annotations

import json

import pytest

from cellang.corpus import external
from cellang.gmt import read_gmt
from cellang.genes import load_resolver


def test_a_test_file_holds_its_harmonised_sets_and_the_manifest_counts_each_step(tmp_path, monkeypatch) -> None:
    raw = [("TF1_targets", "TF1 regulon", "CollecTRI", ("MYOD1", "MYOG", "DES", "CKM", "ACTA1", "TNNT2")),
           ("TF2_targets", "TF2 regulon", "CollecTRI", ("MYOD1", "MYOG", "DES", "CKM", "ACTA1", "TNNT2")),  # identical
           ("TF3_targets", "TF3 regulon", "CollecTRI", ("TP53", "MDM2", "CDKN1A")),  # too small
           ("TF4_targets", "TF4 regulon", "CollecTRI", ("NOT_A_GENE1", "NOT_A_GENE2", "NOT_A_GENE3", "TP53", "MDM2",
                                                        "CDKN1A", "BAX", "BBC3")),  # under 90% mapped
           ("TF5_targets", "TF5 regulon", "CollecTRI", ("p53", "MDM2", "CDKN1A", "BAX", "BBC3", "GADD45A"))]
    records = [{"key": "CollecTRI", "files": []}]
    monkeypatch.setattr(external, "load_sources", lambda sources, log: (raw, records))
    test = external.ExternalTest("regulons", "TF regulons", ("CollecTRI",))
    manifest = external.build_external(load_resolver(), tmp_path, [test], log=lambda _: None)
    sets = read_gmt(tmp_path / "regulons.gmt.gz").gene_sets
    assert [s.name for s in sets] == ["TF1_targets", "TF5_targets"]
    assert "TP53" in sets[1].genes, "an alias is read as its approved symbol"
    entry = manifest["tests"][0]
    assert entry["sets_after_step"] == {"loaded": 5, "mapped_at_least_90pct": 4, "at_least_5_genes": 3, "unique": 2}
    assert entry["sets"] == 2 and entry["sources"] == records
    assert json.loads((tmp_path / "manifest.json").read_text())["tests"][0]["sha256"] == entry["sha256"]


def test_rebuilding_one_file_keeps_the_others_in_the_manifest(tmp_path, monkeypatch) -> None:
    raw = [("TF1_targets", "TF1 regulon", "CollecTRI", ("MYOD1", "MYOG", "DES", "CKM", "ACTA1", "TNNT2"))]
    monkeypatch.setattr(external, "load_sources", lambda sources, log: (raw, []))
    first, second = external.EXTERNAL_TESTS[:2]
    external.build_external(load_resolver(), tmp_path, [first, second], log=lambda _: None)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["tests"].append({"name": "retired-file"})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    external.build_external(load_resolver(), tmp_path, [second], log=lambda _: None)
    names = [e["name"] for e in json.loads((tmp_path / "manifest.json").read_text())["tests"]]
    assert names == [first.name, second.name], "kept, rebuilt once, in the files' order; a retired entry is gone"


def test_every_test_file_reads_extended_sources_and_unknown_names_are_refused() -> None:
    from cellang.corpus.sources import EXTENDED_SOURCES

    keys = {s.key for s in EXTENDED_SOURCES}
    assert all(set(t.sources) <= keys for t in external.ALL_FILES), "never a default-corpus source"
    tested = {s for t in external.EXTERNAL_TESTS for s in t.sources}
    assert not tested & {s for t in external.VALIDATION_FILES for s in t.sources}, "validation never reads a test source"
    assert {t.role for t in external.VALIDATION_FILES} == {"validation"}
    assert {t.role for t in external.EXTERNAL_TESTS} == {"test"}
    assert external.external_path("corum").name == "corum.gmt.gz"
    with pytest.raises(KeyError, match="no external test file 'kegg'"):
        external.external_path("kegg")
