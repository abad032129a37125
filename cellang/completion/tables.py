"""A completion as tables and files: what ``cl.pw.complete``, ``cellang complete`` and the Pathway completion page
show and download.

In:  a :class:`~cellang.completion.completer.Completion`.
Out: the prediction table (with each prediction's evidence: the share of its score from retrieval over the
     training sets and from the model, and the sets that support it), the metrics of a test (recall, precision,
     Fisher p), the long-format evidence table, and the CSV / GMT downloads.

Two tasks: *expand* a list (``mask_ratio`` 0: every gene is the prompt, N genes are proposed to add) and
*test* (hide part of the list and see how much of it comes back: recall, precision, Fisher p).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from cellang.completion.completer import Completion, CompletionError
from cellang.completion.evidence import GeneEvidence
from cellang.gmt import GeneSet, gmt_bytes
from cellang.stats import overlap_p_value
from cellang.text import plural

EVIDENCE_SETS = 10  # supporting sets named per gene in the evidence table (the rest summed in one row)


# --- the report -------------------------------------------------------------------------------


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


def has_evidence(completion: Completion) -> bool:
    """Whether the completion says why each prediction was made (its completer had a retrieval datastore)."""
    return bool(completion.evidence) and len(completion.evidence) == len(completion.predictions)


NOISE = 1e-5  # a part of a score below this share of it is float32 rounding (scores are float32), shown as 0


def denoised(value: float, score: float) -> float:
    """``value`` (a part of ``score``), or 0.0 when it is within rounding of 0: a ranking made of retrieval
    alone leaves the model a part like 4e-10 of a 0.01 score, which reads as if the model said something."""
    return 0.0 if abs(value) <= NOISE * abs(score) else float(value)


# Per prediction, when the completion has evidence: the score's parts (they add up to the score), how many
# training sets support the gene, and the best of them as 'NAME (overlap/size); ...'.
EVIDENCE_COLUMNS = ["from_retrieval", "from_model", "supporting_sets", "top_supporting_sets"]


def prediction_table(completion: Completion) -> pd.DataFrame:
    """rank, gene, score, status (recovered / novel) for each predicted gene, best first; with evidence,
    also the :data:`EVIDENCE_COLUMNS`."""
    held_out = set(completion.masked)
    table = pd.DataFrame(
        [{"rank": i, "gene": g, "score": s, "status": "recovered" if g in held_out else "novel"}
         for i, (g, s) in enumerate(completion.predictions, start=1)],
        columns=["rank", "gene", "score", "status"],
    )
    if has_evidence(completion):
        evidence = completion.evidence
        table["from_retrieval"] = [denoised(e.from_retrieval, e.score) for e in evidence]
        table["from_model"] = [denoised(e.from_model, e.score) for e in evidence]
        table["supporting_sets"] = pd.array([len(e.sets) for e in evidence], dtype="Int64")
        table["top_supporting_sets"] = [e.summary() for e in evidence]
    return table


CSV_COLUMNS = ["rank", "gene", "score", "status", "method", "mask_ratio", "seed"]


def csv_columns(completion: Completion) -> list[str]:
    """The download's columns: :data:`CSV_COLUMNS`, with the evidence columns after ``status`` when the
    completion has evidence."""
    return CSV_COLUMNS[:4] + (EVIDENCE_COLUMNS if has_evidence(completion) else []) + CSV_COLUMNS[4:]


def completion_table(completion: Completion) -> pd.DataFrame:
    """The download, one row per gene: prompt genes (no rank, no score), predictions best first (rank 1..),
    then hidden genes that were not predicted (status ``missed``); with evidence, each prediction's
    :data:`EVIDENCE_COLUMNS` (blank for prompt and missed genes); every row also carries the method,
    mask ratio (0: nothing hidden) and seed, so the file alone says how it was made."""
    predicted = set(completion.genes)
    missed = [g for g in completion.masked if g not in predicted]
    rows = ([{"gene": g, "status": "prompt"} for g in completion.prompt]
            + prediction_table(completion).to_dict("records")
            + [{"gene": g, "status": "missed"} for g in missed])
    columns = csv_columns(completion)
    table = pd.DataFrame(rows, columns=columns[:-3])
    table["rank"] = table["rank"].astype("Int64")
    table["score"] = table["score"].astype(float)
    if "supporting_sets" in table:
        table["supporting_sets"] = table["supporting_sets"].astype("Int64")
        table["top_supporting_sets"] = table["top_supporting_sets"].fillna("")
        for column in ("from_retrieval", "from_model"):
            table[column] = table[column].astype(float)
    table["method"] = completion.method
    table["mask_ratio"] = completion.mask_ratio or 0.0
    table["seed"] = completion.seed
    return table


def table_csv(table: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6g", lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def completion_csv(completion: Completion) -> bytes:
    return table_csv(completion_table(completion))


# --- evidence ---------------------------------------------------------------------------------

EVIDENCE_TABLE_COLUMNS = ["rank", "gene", "source", "set", "description", "overlap", "size", "contribution"]


def _evidence_frame(rows: list[dict[str, object]], descriptions: Mapping[str, str] | None) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=[c for c in EVIDENCE_TABLE_COLUMNS if c != "description"])
    table.insert(4, "description", [(descriptions or {}).get(name, "") if name else "" for name in table["set"]])
    for column in ("rank", "overlap", "size"):
        table[column] = table[column].astype("Int64")
    table["contribution"] = table["contribution"].astype(float)
    return table


def evidence_table(completion: Completion, descriptions: Mapping[str, str] | None = None,
                   top: int = EVIDENCE_SETS) -> pd.DataFrame:
    """Long-format evidence, every predicted gene best first: its ``top`` supporting training sets (name,
    ``descriptions``' sentence for it, prompt genes in the set, set size, contribution), one row for its
    other supporting sets together, and the model's row; per gene the contributions add up to its score.
    Empty (with the columns) when the completion has no evidence."""
    if not has_evidence(completion):
        return _evidence_frame([], descriptions)
    rows = [{"rank": rank, **row} for rank, item in enumerate(completion.evidence, start=1)
            for row in _denoised_rows(item, top)]
    return _evidence_frame(rows, descriptions)


def _denoised_rows(item: GeneEvidence, top: int | None) -> list[dict[str, object]]:
    rows = item.rows(top)
    rows[-1]["contribution"] = denoised(rows[-1]["contribution"], item.score)  # the model's row
    return rows


def evidence_csv(completion: Completion, descriptions: Mapping[str, str] | None = None,
                 top: int = EVIDENCE_SETS) -> bytes:
    return table_csv(evidence_table(completion, descriptions, top))


def gene_evidence(completion: Completion, gene: str) -> GeneEvidence | None:
    """The evidence for one predicted gene (None when the completion has none or did not predict it)."""
    if not has_evidence(completion):
        return None
    return next((item for item in completion.evidence if item.gene == gene), None)


def gene_evidence_table(item: GeneEvidence, descriptions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Every training set that supports one gene, and the model's row: source, set, description, overlap,
    size, contribution (adding up to the score)."""
    return _evidence_frame([{"rank": None, **row} for row in _denoised_rows(item, None)], descriptions).drop(
        columns=["rank", "gene"])


def evidence_note(completion: Completion) -> str:
    """What the evidence columns mean, for this completion (empty when it has no evidence)."""
    if not has_evidence(completion):
        return ""
    if not any(item.from_retrieval for item in completion.evidence):
        return ("Retrieval has no part in this ranking: the score is the model's, and the training sets that hold "
                "each gene and share genes with the prompt are shown for context.")
    return ("Score = from retrieval + from the model. From retrieval: the gene's share of the votes of the training "
            "sets that hold it and share genes with the prompt (a set votes more the more prompt genes it holds "
            "and the smaller it is); from the model: what the model added to or took from that. Overlap: prompt "
            "genes in the set; size: genes in the set.")


def evidence_shares(item: GeneEvidence) -> dict[str, str]:
    """Label -> value for one gene's tiles: its score, the parts from retrieval and from the model (with
    their share of the score when it is positive) and how many training sets support it."""
    def part(value: float) -> str:
        value = denoised(value, item.score)
        share = f" ({value / item.score:.0%})" if item.score > 0 else ""
        return f"{value:.3g}{share}"

    return {"Score": f"{item.score:.3g}", "From retrieval": part(item.from_retrieval),
            "From the model": part(item.from_model), "Supporting sets": f"{len(item.sets):,}"}


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
