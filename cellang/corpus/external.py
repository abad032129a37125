"""Test files from outside the corpus: gene sets of registry sources the default corpus never trains on.

    cellang build external                    # -> data/external/<name>.gmt.gz and manifest.json
    cellang benchmark pathways --gmt data/external/corum.gmt.gz

Each file is one kind of gene set the default corpus does not hold (TF regulons, TF ChIP-seq targets, protein
complexes), read by the extended corpus's own readers from the same registry packages, its identifiers
harmonised to approved symbols with the project's gene table and kept under the corpus's QC (at least 90%
mapped, 5 genes or more, identical sets once). Nothing else is filtered: how close each set is to a training set
(near-duplicate or novel) is the benchmark's to say, against the model's own training sets.

Beside the test files, outside-style validation files (VALIDATION_FILES: mouse phenotypes, TF
co-expression, GWAS traits) from sources the test files do not use: a setting may be chosen on them, never on a test file.

The sources' terms are non-commercial, mixed or unclear (:mod:`.sources`), so the files are built on the user's
machine into ``data/external/`` (not committed, like the extended corpus); the manifest records every package
file with its sha256 and licence, and the counts at each step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cellang.corpus import qc
from cellang.corpus.build import load_sources, write_json
from cellang.corpus.sources import EXTENDED_SOURCES, CorpusSource
from cellang.genes import GeneResolver
from cellang.gmt import GeneSet, gmt_bytes
from cellang.paths import DATA_DIR
from cellang.registry import sha256_of

EXTERNAL_DIR = DATA_DIR / "external"
MANIFEST = "manifest.json"
BUILD_COMMAND = "cellang build external"


@dataclass(frozen=True)
class ExternalTest:
    """One file: its name, what it holds, the extended-corpus sources it is read from, and its role: "test"
    (reported, never tuned on) or "validation" (outside-style sets a setting may be chosen on)."""

    name: str
    kind: str
    sources: tuple[str, ...]
    role: str = "test"

    @property
    def file_name(self) -> str:
        return f"{self.name}.gmt.gz"


EXTERNAL_TESTS: tuple[ExternalTest, ...] = (
    ExternalTest("collectri", "TF regulons (CollecTRI, curated)", ("CollecTRI",)),
    ExternalTest("dorothea", "TF regulons (DoRothEA, all confidence levels)", ("DoRothEA",)),
    ExternalTest("encode-chip", "TF ChIP-seq targets (ENCODE, per TF and cell line)", ("ENCODE_ChIP",)),
    ExternalTest("corum", "protein complexes (CORUM)", ("CORUM",)),
)
# Outside-style validation: other kinds of sets the default corpus does not hold either, from sources that share
# nothing with the test files (Enrichr's ChEA, built from ChIP-seq, is left out for being too near ENCODE's;
# DrugMatrix for its rat symbols: 4 of 7,876 sets map).
VALIDATION_FILES: tuple[ExternalTest, ...] = (
    ExternalTest("validation-mouse-phenotypes", "mouse phenotype genes (MGI, Enrichr)",
                 ("Enrichr_MGI_Mammalian_Phenotype_Level_4_2021",), "validation"),
    ExternalTest("validation-tf-coexpression", "genes co-expressed with TFs (ARCHS4, Enrichr)",
                 ("Enrichr_ARCHS4_TFs_Coexp",), "validation"),
    ExternalTest("validation-gwas", "genes of GWAS traits (dbGaP, Enrichr)", ("Enrichr_dbGaP",), "validation"),
)
ALL_FILES = EXTERNAL_TESTS + VALIDATION_FILES


def external_path(name: str, folder: Path = EXTERNAL_DIR) -> Path:
    """Where the file ``name`` is written by :func:`build_external` (a name of ALL_FILES)."""
    known = {t.name: t for t in ALL_FILES}
    if name not in known:
        raise KeyError(f"no external test file {name!r}; the files are {', '.join(known)}")
    return folder / known[name].file_name


def build_external(resolver: GeneResolver, out_dir: Path = EXTERNAL_DIR,
                   tests: Sequence[ExternalTest] = ALL_FILES, params: qc.QcParams = qc.QcParams(),
                   log=print) -> dict:  # type: ignore[no-untyped-def]
    """Read each test's sources (downloads cached), harmonise and QC its sets, write ``<name>.gmt.gz`` and the
    manifest into ``out_dir``; returns the manifest."""
    by_key: dict[str, CorpusSource] = {s.key: s for s in EXTENDED_SOURCES}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"command": BUILD_COMMAND, "qc": {"min_fraction_mapped": params.min_fraction_mapped,
                                                       "min_size": params.min_size}, "tests": []}
    built = {t.name for t in tests}
    if (out_dir / MANIFEST).is_file():  # the files not rebuilt now keep their entries
        earlier = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("tests", [])
        known = {t.name for t in ALL_FILES}
        manifest["tests"] = [e for e in earlier if e.get("name") in known - built]
    for test in tests:
        raw, records = load_sources([by_key[key] for key in test.sources], log)
        steps = {"loaded": len(raw)}
        sets = qc.harmonise_sets(raw, resolver)
        sets = qc.keep_well_mapped(sets, params.min_fraction_mapped)
        steps[f"mapped_at_least_{round(100 * params.min_fraction_mapped)}pct"] = len(sets)
        sets = [s for s in sets if len(s.genes) >= params.min_size]
        steps[f"at_least_{params.min_size}_genes"] = len(sets)
        sets = qc.remove_identical(sets)
        steps["unique"] = len(sets)
        path = out_dir / test.file_name
        path.write_bytes(gmt_bytes([GeneSet(s.name, s.description, s.genes) for s in sets], compress=True))
        sizes = sorted(len(s.genes) for s in sets)
        manifest["tests"].append({
            "name": test.name, "kind": test.kind, "role": test.role, "file": test.file_name,
            "sha256": sha256_of(path),
            "sets": len(sets), "genes": len({g for s in sets for g in s.genes}),
            "size_median": sizes[len(sizes) // 2] if sizes else 0, "size_max": sizes[-1] if sizes else 0,
            "sets_after_step": steps, "sources": records})
        log(f"{test.name}: {len(sets)} sets ({steps}) -> {path.name}")
    order = {t.name: i for i, t in enumerate(ALL_FILES)}
    manifest["tests"].sort(key=lambda e: order.get(e["name"], len(order)))
    write_json(manifest, out_dir / MANIFEST)
    return manifest
