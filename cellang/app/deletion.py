"""What the In-silico deletion page needs besides the workflow: datasets, sensible defaults, known-gene
choices, gene-list parsing and gene-set search, the cells the widgets describe, captions, the CSV
download. No Streamlit here.

In:  the session's cells (the HSMM default, an upload's ``UploadResult.adata``, Census cells), the rank encoders
     found (:func:`~cellang.embedding.loading.scan_cell_models`) and widget values.
Out: plain values for widgets, a :class:`Selection` for the request, and :class:`DeletionResult` -> text and
     CSV bytes that name the encoder used. The request and the run are :mod:`cellang.app.deletion_run`'s.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cellang import defaults
from cellang.browse import search_corpus
from cellang.corpus import load_corpus
from cellang.enrich import significance_note
from cellang.genes import load_resolver, split_genes
from cellang.known_genes import ALL_CARDIOMYOPATHY, MYOGENIC_REGULATORS, known_gene_sets
from cellang.perturbation import request as perturbation_request
from cellang.perturbation import stats, workflow
from cellang.perturbation.presets import CELL_TYPE_COLUMNS, HSMM_NOTE, STATE_COLUMNS, find_column, heart_state
from cellang.perturbation.workflow import MODEL, DeletionResult, Selection
from cellang.text import out_of_range, plural

HSMM = "hsmm"
UPLOAD = "upload"
CENSUS = "census"
MAX_STATE_LABELS = 60  # columns with more labels than this are not offered as states
MAX_START_CELLS = 500  # the page's cap; the CLI takes more
CENSUS_OFFLINE_NOTE = ("Heart cells from the CELLxGENE Census (Data page) need an internet connection; offline, upload "
                       "your own .h5ad here (a state column such as disease, optionally a cell-type column).")
# The default run reads every HSMM myotube (49): 10,744 deletions with their null in 53 s of engine time on 2 CPU cores
# (cellang delete, results/deletion_hsmm.json).
DEFAULT_PAGE_CELLS = 50
MYOGENIC_KEY = "myogenic regulators: MYOD1, MYOG, MYF5, MYF6, MEF2C"
NO_KNOWN = "none"
GENE_MODES = {"all": "all expressed genes", "list": "a list of genes", "set": "a corpus gene set"}
PERTURB_MODES = {"delete": "deletion", "overexpress": "overexpression (move to the top)"}
NO_GOAL = "(none: score how far the cells move)"
ALL_TYPES = "(all cells)"
MAX_SETS_LISTED = 200
# Headers short enough to show whole at a 1,400-pixel window; COLUMN_HELP says what each one is.
COLUMN_HELP = stats.COLUMN_HELP  # {column of the ranked table: what it is}, the columns' help
COLUMN_LABELS = {"mean_goal_shift": "goal shift", "mean_shift": "shift", "mean_difference": "mean diff.",
                 "expression_rank": "expr. rank", "mean_goal_probability_shift": "goal prob."}
NOTHING_ADDED_AUROC = 0.02  # the model "adds nothing" unless its known-gene AUROC beats the best baseline's by this
SAME_AS_BASELINE_RHO = 0.9  # ... or, without known genes, when its ranking is this close to the mean difference's
# The page's default is the combination that wins the held-out state transitions of the validity benchmark
# (results/benchmark_deletion_validity_rank_finetuned.md): fine-tune on the start and goal states, rank by the goal
# state's probability (CLASSIFIER_SCORE).
FINE_TUNE_FIRST = True
FINE_TUNE_FIRST_MINUTES = defaults.FINE_TUNE_FIRST_MINUTES
ENCODERS_NOTE = ("A rank-value encoder (cells-rank, the default) deletes a gene from the cell's ranking; a binned "
                 "encoder (cells-binned) drops the gene's token and value (overexpression: the top bin). The fast "
                 "screen reads rank encodings only. By default the encoder is first fine-tuned to tell the start "
                 "cells from the goal cells, and genes are ranked by how much their deletion raises the goal state's "
                 "probability: that way cells-rank beat the expression rank on all four held-out state transitions "
                 "of the validity benchmark (the plain embedding on three; results/benchmark_deletion_validity*.md). "
                 "Untick it in Settings for the plain embedding, which ranks the muscle demo's one myogenic "
                 "regulator higher (MYOG 23rd of 1,435) and needs no fine-tuning.")


@dataclass(frozen=True)
class StateDefaults:
    """Default widget values for a dataset: state column, start and goal labels, cell-type column."""

    state_column: str | None
    start: str | None
    goal: str | None
    cell_type_column: str | None
    known: str


def dataset_choices(uploaded: Any = None, census: Any = None) -> dict[str, str]:
    """{dataset: label} offered: HSMM always; an upload (an ok ``UploadResult``) and Census cells when present."""
    choices = {HSMM: "HSMM: human skeletal myoblasts -> myotubes (271 real cells, embedded)"}
    if uploaded is not None and uploaded.ok:
        choices[UPLOAD] = f"Your upload: {uploaded.name} ({plural(uploaded.adata.n_obs, 'cell')}, this session)"
    if census is not None:
        choices[CENSUS] = f"Census cardiomyocytes fetched on the Data page ({plural(census.n_obs, 'cell')})"
    return choices


def dataset_identity(dataset: str, upload_id: object = None, census: Any = None) -> str:
    """A key that changes when the cells behind `dataset` change (a new upload, another Census fetch)."""
    if dataset == UPLOAD:
        return f"upload:{upload_id}"
    return f"census:{id(census)}" if dataset == CENSUS else dataset


def dataset_note(dataset: str, name: str = "", n_cells: int = 0) -> str:
    """One plain sentence saying which data is shown."""
    if dataset == HSMM:
        return HSMM_NOTE
    if dataset == CENSUS:
        return (f"Data shown: {plural(n_cells, 'cardiomyocyte')} fetched from the CELLxGENE Census in this session "
                "(normal, dilated and hypertrophic cardiomyopathy hearts).")
    return f"Data shown: your upload {name} ({plural(n_cells, 'cell')}); nothing of it is saved."


def state_columns(obs: pd.DataFrame) -> list[str]:
    """obs columns that can hold states or cell types: 2..MAX_STATE_LABELS distinct labels, not numeric
    with many values; detected disease/state and cell-type columns first."""
    preferred = [c for c in (find_column(obs, STATE_COLUMNS), find_column(obs, CELL_TYPE_COLUMNS)) if c]
    out = []
    for column in obs.columns:
        values = obs[column]
        n = values.astype(str).nunique()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if 2 <= n <= MAX_STATE_LABELS and not (numeric and n > 10):
            out.append(str(column))
    return [c for c in preferred if c in out] + [c for c in out if c not in preferred]


def default_states(obs: pd.DataFrame) -> StateDefaults:
    """HSMM: myotube -> myoblast; heart data: normal -> dilated (or hypertrophic) cardiomyopathy;
    otherwise the two most frequent labels of the first state-like column."""
    columns = state_columns(obs)
    cell_type_column = find_column(obs, CELL_TYPE_COLUMNS)
    if "state" in obs and {"myotube", "myoblast"} <= set(obs["state"].astype(str)):
        return StateDefaults("state", "myotube", "myoblast", cell_type_column, MYOGENIC_KEY)
    state_column = find_column(obs, STATE_COLUMNS) or (columns[0] if columns else None)
    if state_column is None:
        return StateDefaults(None, None, None, cell_type_column, NO_KNOWN)
    labels = labels_of(obs, state_column)
    normal = next((v for v in labels if heart_state(v) == "normal"), None)
    disease = next((v for v in labels if heart_state(v) in ("dilated cardiomyopathy", "hypertrophic cardiomyopathy")),
                   None)
    if normal and disease:
        term = "Dilated cardiomyopathy" if heart_state(disease) == "dilated cardiomyopathy" else \
            "Hypertrophic cardiomyopathy"
        return StateDefaults(state_column, normal, disease, cell_type_column, f"HPO: {term}")
    return StateDefaults(state_column, labels[0], labels[1] if len(labels) > 1 else None, cell_type_column, NO_KNOWN)


def known_choices() -> dict[str, tuple[str, ...]]:
    """Known-positive lists offered for validation: the myogenic regulators and each HPO list."""
    choices: dict[str, tuple[str, ...]] = {MYOGENIC_KEY: MYOGENIC_REGULATORS}
    for term, genes in known_gene_sets("cardiomyopathy").items():
        key = "HPO: any of the four cardiomyopathy terms" if term == ALL_CARDIOMYOPATHY else f"HPO: {term}"
        choices[key] = tuple(sorted(genes))
    choices[NO_KNOWN] = ()
    return choices


def labels_of(obs: pd.DataFrame, column: str) -> list[str]:
    """The distinct labels of an obs column, most frequent first (ties by name): the start and goal choices."""
    return perturbation_request.labels_of(obs, column)


def corpus_gene_set(name: str) -> list[str]:
    """The genes of one corpus gene set (KeyError when there is none of that name)."""
    return workflow.corpus_gene_set(name)


def index_of(options: Sequence[object], value: object) -> int:
    """The position of `value` among `options`, or 0 (the first option) when it is not one of them."""
    return list(options).index(value) if value in options else 0


def page_selection(state_column: str, start: str, goal: str, type_column: str,
                   cell_types: Sequence[str]) -> Selection:
    """The cells the widgets describe: goal NO_GOAL means no goal state, type_column ALL_TYPES no cell-type
    filter."""
    no_goal = goal == NO_GOAL
    return Selection(state_column, (start,), () if no_goal else (goal,), start, "" if no_goal else goal,
                     None if type_column == ALL_TYPES else type_column, tuple(cell_types))


def find_gene_sets(query: str) -> tuple[dict[str, str], str]:
    """Corpus gene sets matching `query` as the Data page finds them (names, descriptions, genes; gene
    aliases resolved): ({name: label} of the first MAX_SETS_LISTED, what was searched in words or "")."""
    result = search_corpus(load_corpus(), load_resolver(), query)
    labels = {p.name: f"{p.name}: {p.description} ({plural(len(p.genes), 'gene')})"
              for p in result.hits[:MAX_SETS_LISTED]}
    return labels, result.note


def parse_genes(text: str) -> list[str]:
    """Gene names from free text (:func:`cellang.genes.split_genes`), duplicates dropped."""
    return list(dict.fromkeys(split_genes(text)))


def ranked_frame(result: DeletionResult, part: str = "all", order: str = "effect") -> pd.DataFrame:
    """The ranked table as shown (stats.EFFECT_TABLE_COLUMNS and known): "all" genes by signed effect, the
    "targets" (toward the goal, strongest first) or the genes moving cells "away" (strongest first); order
    "consensus": the targets by the consensus of the effect and the mean difference instead."""
    frame = {"all": result.ranked, "targets": result.targets, "away": result.away}[part].copy()
    if order == "consensus" and part == "targets" and "consensus" in frame:
        frame = frame.sort_values(["consensus", "gene"], ascending=[False, True], kind="stable").reset_index(drop=True)
    known = set(result.validation.known_ranks) if result.validation is not None else set()
    frame["known"] = frame["gene"].isin(known)
    return frame


def ranked_csv(result: DeletionResult) -> bytes:
    """CSV bytes of :func:`ranked_frame` plus the encoder that made it (columns ``model`` and ``checkpoint``, the
    same on every row); one header row, one row per gene."""
    buffer = io.StringIO()
    frame = ranked_frame(result)
    frame["model"] = result.settings.get("model", MODEL)
    frame["checkpoint"] = result.settings.get("checkpoint", "")
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def settings_problems(max_cells: float) -> list[str]:
    """The page's own limit in a sentence (the request checks the rest when it is made): at most
    MAX_START_CELLS start cells here; the command line takes more."""
    problem = out_of_range("Start cells", max_cells, 1, MAX_START_CELLS)
    return [problem] if problem else []


def gene_choice(gene_mode: str, genes: Sequence[str] | None, set_name: str | None = None) -> str:
    """A short, file-name-safe label of the genes perturbed: all-genes, set-<name>, or list-<first genes>."""
    if gene_mode == "set" and set_name:
        return f"set-{set_name}"
    if gene_mode == "list" and genes:
        return "list-" + "-".join(genes[:3]) + (f"-and-{len(genes) - 3}-more" if len(genes) > 3 else "")
    return "all-genes"


def csv_name(dataset: str, start: str, goal: str, mode: str, genes: str = "all-genes", model: str = MODEL) -> str:
    """cellang_<dataset>_<start>-to-<goal>_<mode>_<genes>_<model>_ranked.csv: two runs that differ in data,
    states, mode, genes or encoder never download under one name."""
    states = f"{start}-to-{goal}" if goal else start
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(p for p in (dataset, states, mode, genes) if p)).strip("-")
    return f"cellang_{stem[:150]}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', model)[:80]}_ranked.csv"


def result_notes(result: DeletionResult) -> list[str]:
    """What a reader of the result must know that the numbers do not say."""
    notes = []
    if result.settings.get("method") == "screen":
        s = result.settings
        notes.append(f"Fast screen: {s['exact_pairs']:,} of {s['pairs']:,} deletions (in the "
                     f"{plural(s['candidate_genes'], 'most promising gene')}) were scored exactly; the others are "
                     "estimates (column 'scored' of the scores), corrected by their gene's error where it was "
                     "scored exactly. Rerun without the screen for exact scores everywhere.")
    return notes


def score_label(result: DeletionResult) -> str:
    """What the ranking score is, in words."""
    moved = {"goal_shift": "the shift toward the goal state",
             "goal_probability_shift": "the change of the goal state's probability (state classifier)"}.get(
        result.settings["score"], "the shift (1 - cosine)")
    return f"effect: {moved} beyond expression-matched controls (control SDs)"


HIT_Q = 0.05  # the false discovery rate at which a gene is called a hit


def toward_words(result: DeletionResult, than: str = "") -> str:
    """How the targets move the cells, in words: "toward the goal", or (scored by shift alone) "more" followed by
    ``than`` ("more than their controls")."""
    return f"more {than}".strip() if result.settings["score"] == "shift" else "toward the goal"


def hits_sentence(result: DeletionResult) -> str:
    """How many genes move the cells toward the goal beyond their controls at q < HIT_Q, or a plain statement that
    none does."""
    toward = toward_words(result)
    targets = result.targets
    hits = targets[targets["q"] < HIT_Q]
    verb = PERTURB_MODES[result.settings["mode"]].split(" ")[0]
    if hits.empty:
        return (f"No {verb} moves these cells {toward} more than deleting expression-matched control genes does (no "
                f"gene at q < {HIT_Q}): read the ranking below as candidates, not findings.")
    return (f"{plural(len(hits), 'gene')} {'moves' if len(hits) == 1 else 'move'} these cells {toward} beyond their expression-matched controls at "
            f"q < {HIT_Q}: " + ", ".join(hits["gene"].astype(str).head(10))
            + (" ..." if len(hits) > 10 else "") + ".")


def baseline_sentence(result: DeletionResult) -> str:
    """One sentence on what the model adds over the baselines on this data: by the known genes' AUROC when there
    are known genes, else by how closely its ranking follows the mean expression difference."""
    validation, baselines = result.validation, result.baseline_validation
    rho = result.agreement.get("mean_difference", float("nan"))
    agreement = f"Spearman agreement with the mean expression difference: {rho:.2f}." if rho == rho else ""
    scored = {name: v.auroc for name, v in baselines.items() if v.auroc == v.auroc}
    if validation is not None and validation.auroc == validation.auroc and scored:
        best = max(scored, key=scored.get)
        if scored[best] + NOTHING_ADDED_AUROC >= validation.auroc:
            return (f"On these cells the model adds nothing over the {best} baseline: ranking the same genes by "
                    f"{best} gives the known genes AUROC {scored[best]:.3f}, the model {validation.auroc:.3f}. "
                    + agreement).strip()
        return (f"The model ranks the known genes better than the baselines here (AUROC {validation.auroc:.3f}; "
                + ", ".join(f"{name} {value:.3f}" for name, value in scored.items()) + "). " + agreement).strip()
    if rho == rho and rho >= SAME_AS_BASELINE_RHO:
        return (f"On these cells the model's ranking nearly repeats the mean expression difference (Spearman "
                f"{rho:.2f}): it adds little beyond it.")
    return agreement


def model_used(result: DeletionResult) -> str:
    """The encoder a run used: 'my-cells-rank-finetuned (models/cells-rank-finetuned)'."""
    s = result.settings
    return f"{s.get('model', MODEL)} ({s['checkpoint']})" if s.get("checkpoint") else str(s.get("model", MODEL))


def run_caption(result: DeletionResult) -> str:
    """One line under the ranking: the cells, the perturbation, the encoder, the score and how fast it ran."""
    s = result.settings
    return (f"{s['selection']}; {PERTURB_MODES[s['mode']]} embedded with {model_used(result)}; ranked by "
            f"{score_label(result)}. {s['pairs']:,} "
            f"perturbations in {s['seconds']:.1f} s on {s['device']} ({s['pairs_per_second']:,.0f} per second).")


def enrichment_note(result: DeletionResult) -> str:
    """Said under the enrichment table: that nothing overlaps, or that nothing is significant ("" otherwise)."""
    return significance_note(result.enrichment) if result.enrichment is not None else ""


