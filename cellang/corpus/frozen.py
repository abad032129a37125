"""The frozen pathway benchmark: 1,000 held-out pathways that every corpus build keeps as they are.

The file was written once from the first corpus (its benchmark sample, in corpus order) and is an
input of every later build: its pathways are the test split, with exactly these genes, so benchmark
results before and after a corpus change stay comparable. Masks are drawn from each pathway's genes
and its position in this file, so they are frozen too. Descriptions are labels and come from the sources
(the KEGG pathways gained KEGG's names after the freeze).
"""

from __future__ import annotations

from pathlib import Path

from cellang.errors import CellangError
from cellang.gmt import GeneSet, read_gmt
from cellang.paths import DATA_DIR
from cellang.registry import sha256_of

BENCHMARK_FILE = DATA_DIR / "benchmark" / "pathways-1000.gmt.gz"
BENCHMARK_SHA256 = "62abca376fbdcf0bcee14fc183d6375ea4af3f3a51c1f1d8e67ff0fb8dbdacd6"
# A new source's set at least this similar (Jaccard) to a benchmark pathway is kept out of training,
# so the new sources cannot hand retrieval a near-copy of a held-out pathway.
KEEP_OUT_JACCARD = 0.5


class FrozenBenchmarkError(CellangError, ValueError):
    """The frozen benchmark file is missing or differs from the one every result was measured on."""


def load_frozen_benchmark(path: Path = BENCHMARK_FILE, sha256: str | None = BENCHMARK_SHA256) -> list[GeneSet]:
    """The benchmark pathways in file order; ``sha256`` (None skips the check) guards against edits."""
    if not path.is_file():
        raise FrozenBenchmarkError(f"frozen benchmark file not found: {path.name} (restore it from git)")
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256:
        raise FrozenBenchmarkError(
            f"{path.name} has sha256 {actual[:12]}..., not the frozen {sha256[:12]}...: the benchmark file was "
            "changed; restore it from git so results stay comparable")
    return list(read_gmt(path).gene_sets)
