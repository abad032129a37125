"""In-silico deletion page: delete (or overexpress) genes in cells and rank them by how far the cells move."""

import streamlit as st

import cellang as cl
from cellang.app.adapt_panel import adapt_panel
from cellang.app.fine_tune_panel import fine_tune_panel
from cellang.app.cell_models import checkpoint_stamp, models_caption, no_models_message, scan_cell_models
from cellang.app.deletion import (
    ALL_TYPES,
    CENSUS_OFFLINE_NOTE,
    COLUMN_HELP,
    COLUMN_LABELS,
    DEFAULT_PAGE_CELLS,
    ENCODERS_NOTE,
    FINE_TUNE_FIRST,
    FINE_TUNE_FIRST_MINUTES,
    GENE_MODES,
    HSMM,
    MAX_START_CELLS,
    NO_GOAL,
    PERTURB_MODES,
    UPLOAD,
    baseline_sentence,
    corpus_gene_set,
    csv_name,
    dataset_choices,
    dataset_identity,
    dataset_note,
    default_states,
    enrichment_note,
    find_gene_sets,
    hits_sentence,
    toward_words,
    gene_choice,
    index_of,
    known_choices,
    labels_of,
    parse_genes,
    ranked_csv,
    ranked_frame,
    result_notes,
    run_caption,
    score_label,
    settings_problems,
    state_columns,
)
from cellang.app.deletion_run import (
    CLASSIFIER_SCORE,
    DEFAULT_GENE_TYPES,
    DEFAULT_MIN_CELLS,
    deletion_request,
    enrichment_sets,
    fine_tune_for_deletion,
    harmonised_cells,
    is_state_classifier,
    run_deletion,
)
from cellang.app.text import plural
from cellang.app.uploads import MAX_UPLOAD_MB, read_upload


@st.cache_resource(show_spinner="Reading the cells...", max_entries=2)
def atlas_cells(name: str):  # type: ignore[no-untyped-def]
    return cl.datasets.cells(name)


@st.cache_resource(show_spinner="Harmonising gene names...", max_entries=4)
def harmonised(key: str, _adata):  # type: ignore[no-untyped-def]
    return harmonised_cells(_adata)


@st.cache_resource(show_spinner="Loading the corpus gene sets...")
def corpus_sets() -> tuple[dict, dict]:
    return enrichment_sets()


st.set_page_config(page_title="cellang · In-silico deletion", page_icon="🧬", layout="wide")
st.title("In-silico deletion")
st.caption("Delete a gene from each cell's rank encoding (or move it to the top: overexpression), embed the cell "
           "with a rank-value encoder (the shipped cells-rank, or one of your own) and measure how far it moves, and "
           "how much closer it gets to a goal state. Each gene is compared with expression-matched control genes "
           "deleted in the same cells (the null of every run): genes are ranked by that effect, with a signed-rank "
           "p and Benjamini-Hochberg q, shown beside two baselines (the mean expression difference and the "
           "expression rank), and checked against known genes (AUROC).")

# --- cells ------------------------------------------------------------------------------------------
with st.expander("Your own cells: upload an .h5ad (e.g. cardiomyocytes with a disease column)"):
    upload = st.file_uploader(f"Upload an .h5ad file (up to {MAX_UPLOAD_MB} MB; it stays in this browser session and "
                              "is never saved)", type=["h5ad"], key="deletion_upload", max_upload_size=MAX_UPLOAD_MB)
    st.caption(CENSUS_OFFLINE_NOTE)
    if upload is not None and st.session_state.get("uploaded_cells_id") != upload.file_id:
        with st.spinner(f"Reading {upload.name}..."):  # the Data page reads uploads the same way and shares them
            st.session_state["uploaded_cells"] = read_upload(upload)
        st.session_state["uploaded_cells_id"] = upload.file_id
    checked = st.session_state.get("uploaded_cells")
    if upload is not None and checked is not None:
        for level, message in checked.messages():
            {"error": st.error, "warning": st.warning, "note": st.info}[level](message)
uploaded = st.session_state.get("uploaded_cells")
census = st.session_state.get("census_cells")
choices = dataset_choices(uploaded, census)
scan = scan_cell_models()
models = {m.name: m for m in scan.models}
left, right = st.columns([3, 2])
dataset = left.selectbox("Cells", list(choices), format_func=choices.get, index=index_of(list(choices), UPLOAD))
model = right.selectbox("Encoder", list(models), format_func=lambda name: models[name].label,
                        index=index_of(list(models), "cells-rank"))
st.caption(f"{ENCODERS_NOTE} {models_caption(scan)}")
identity = dataset_identity(dataset, st.session_state.get("uploaded_cells_id"), census)
cells = atlas_cells(HSMM) if dataset == HSMM else harmonised(identity, uploaded.adata if dataset == UPLOAD else census)
note = dataset_note(dataset, getattr(uploaded, "name", ""), cells.n_obs)
st.info(note)  # the one place the page says which data it shows
if model in models:
    data_name = dataset if dataset != UPLOAD else uploaded.name.removesuffix(".h5ad")
    adapt_panel(cells, models[model], identity, data_name, key="deletion")
    fine_tune_panel(cells, models[model], identity, data_name, key="deletion",
                    column=default_states(cells.obs).state_column)

defaults = default_states(cells.obs)
columns = state_columns(cells.obs)
if not columns:
    st.error("These cells have no obs column with states or cell types (2 to 60 labels), so there is nothing to "
             "choose start and goal cells from.")
    st.stop()
left, middle, right = st.columns(3)
state_column = left.selectbox("State column", columns, index=index_of(columns, defaults.state_column))
labels = labels_of(cells.obs, state_column)
start = middle.selectbox("Start state: the cells to perturb", labels, index=index_of(labels, defaults.start))
goal_options = [NO_GOAL] + [v for v in labels if v != start]
goal = right.selectbox("Goal state", goal_options, index=index_of(goal_options, defaults.goal))
left, right = st.columns([1, 2])
type_options = [ALL_TYPES] + columns
type_column = left.selectbox("Cell-type column", type_options,
                             index=0 if dataset == HSMM else index_of(type_options, defaults.cell_type_column))
cell_types = right.multiselect("Cell types (none chosen: all)", labels_of(cells.obs, type_column)) \
    if type_column != ALL_TYPES else []

# --- genes and settings -----------------------------------------------------------------------------
left, right = st.columns(2)
gene_mode = left.radio("Genes to perturb", list(GENE_MODES), format_func=GENE_MODES.get, horizontal=True)
genes, set_name = None, None
if gene_mode == "list":
    genes = parse_genes(left.text_area("Gene symbols (spaces, commas or lines)", "MYOG MYOD1 MEF2C ACTB"))
elif gene_mode == "set":
    query = left.text_input("Search the corpus gene sets", "muscle contraction")
    found, searched = find_gene_sets(query)
    if searched:
        left.caption(searched)
    if not found:
        left.warning(f"No corpus gene set matches '{query}': try another word.")
    set_name = left.selectbox("Gene set", list(found), format_func=found.get)
    genes = corpus_gene_set(set_name) if set_name else []
mode = right.radio("Perturbation", list(PERTURB_MODES), format_func=PERTURB_MODES.get, horizontal=True)
known_options = known_choices()
known_key = right.selectbox("Known genes (validation)", list(known_options),
                            index=list(known_options).index(defaults.known))
with st.expander("Settings"):
    a, b, c = st.columns(3)
    # No min/max on number fields: the browser would keep the last valid value and hide why in a tooltip;
    # the request's checks (and settings_problems(), the page's own limit) name the problem next to Run instead.
    max_cells = a.number_input("At most this many start cells (random sample)", value=DEFAULT_PAGE_CELLS, step=5,
                               help=f"1 to {MAX_START_CELLS}.")
    min_cells = a.number_input("Rank genes scored in at least this many cells", value=DEFAULT_MIN_CELLS, step=1,
                               help="A gene expressed in one sampled cell gets a noisy mean; the ranking also "
                                    "shrinks each mean by cells / (cells + 3).")
    all_types = a.checkbox("Include pseudogenes and other gene types", value=False,
                           help="By default only protein-coding and lncRNA genes are perturbed.")
    pooling = b.radio("Cell embedding", ["mean", "cls"], format_func={"cls": "CLS token",
                                                                     "mean": "mean of the gene states"}.get)
    precision = b.radio("Arithmetic", ["float32", "bfloat16"],
                        format_func={"float32": "float32 (exact)", "bfloat16": "bfloat16 (faster)"}.get,
                        help="bfloat16 ran 1.6x faster on a 2-core AVX512-BF16 CPU and kept the ranking (Spearman "
                             "0.9996 with float32; results/benchmark_perturb.md). It can be slower on older CPUs.")
    seed = c.number_input("Seed", value=0, step=1, help="Picks the sampled cells.")
    fast = c.checkbox("Fast screen", value=False,
                      help="Deletions toward a goal state: estimate every deletion at once, then score the most "
                           "promising genes exactly; genes outside them keep an estimate (column 'scored'). Faster "
                           "on many cells; results/benchmark_perturb_screen.md says how close it stays to exact.")
    first = c.checkbox("Fine-tune on the start and goal states first", value=FINE_TUNE_FIRST,
                       disabled=goal == NO_GOAL or is_state_classifier(models.get(model)),
                       help="As Geneformer did: the encoder is first trained to tell the start cells from the goal "
                            "cells (held-out cells scored), and the deletions are scored in that model. Done once per "
                            "cells, encoder and states in this session, and saved as one of your models. Needs a "
                            "goal state; a state classifier chosen as the encoder is used as it is.")
    first = first and goal != NO_GOAL and not is_state_classifier(models.get(model))
    first_minutes = c.number_input("Fine-tuning budget (minutes)", value=FINE_TUNE_FIRST_MINUTES, step=0.5,
                                   min_value=0.5, max_value=30.0, disabled=not first)
    classifier_run = first or is_state_classifier(models.get(model))
    scores = ["goal_shift", CLASSIFIER_SCORE]
    score = b.radio("Rank by", scores, index=scores.index(CLASSIFIER_SCORE), disabled=not classifier_run or fast,
                    format_func={"goal_shift": "embedding shift toward the goal",
                                 "goal_probability_shift": "goal state's probability (fine-tuned classifier)"}.get,
                    help="With a state classifier (fine-tuned first, or chosen as the encoder) a deletion can be "
                         "scored by how much it raises the classifier's probability of the goal state (not with the "
                         "fast screen, which estimates the embedding's shift).")
    score = "goal_shift" if fast else score

problem = None if model in models else no_models_message(scan)
problems = ([problem] if problem else []) + settings_problems(max_cells)
request, request_problems = deletion_request(
    state_column, start, goal, type_column, cell_types, genes=genes, mode=mode, pooling=pooling,
    max_cells=int(max_cells), min_cells=int(min_cells), gene_types=None if all_types else DEFAULT_GENE_TYPES,
    seed=int(seed), precision=precision, method="screen" if fast else "exact",
    score=score if classifier_run and goal != NO_GOAL else None, known=known_options[known_key],
    known_label=known_key, data_note=note)
problems += request_problems
for message in problems:
    st.error(message)
folder = models[model].path if model in models else None
key = (identity, model, str(folder), checkpoint_stamp(folder) if folder else "missing", request,
       float(first_minutes) if first else None)
if st.button("Run", type="primary", disabled=bool(problems) or request is None or request.genes == ()):
    st.session_state["deletion_request"] = key
if problems or st.session_state.get("deletion_request") != key:
    st.info("Choose cells, states and genes, then press **Run**.")
    st.stop()

# --- run (once per request) -----------------------------------------------------------------------
if st.session_state.get("deletion_result_key") != key:
    sets, descriptions = corpus_sets()
    bar = st.progress(0.0, text="Starting...")
    try:
        used, done = models[model], 0.0  # done: the share of the bar the fine-tuning step took
        if first:  # fine-tuned once per cells, encoder, states and budget in this session
            tuned = st.session_state.setdefault("deletion_fine_tuned_first", {})
            tuning_key = (identity, model, key[3], request.selection, float(first_minutes))
            if tuning_key not in tuned:
                tuned[tuning_key] = fine_tune_for_deletion(
                    cells, used, request.selection, float(first_minutes), dataset,
                    progress=lambda f, text: bar.progress(0.5 * f, text=f"Fine-tuning: {text}"))
            used, done = tuned[tuning_key], 0.5
        result = run_deletion(cells, request, used, enrich_sets=sets, enrich_descriptions=descriptions,
                              progress=lambda f, text: bar.progress(done + (1.0 - done) * f, text=text))
    except cl.CellangError as error:  # the run cannot be made: the reason
        bar.empty()
        st.error(str(error))
        st.stop()
    bar.empty()
    st.session_state["deletion_result"], st.session_state["deletion_result_key"] = result, key
result = st.session_state["deletion_result"]

# --- results --------------------------------------------------------------------------------------
st.subheader("Ranked genes")
for level, message in result.messages:
    (st.warning if level == "warning" else st.caption)(message)
for message in result_notes(result):
    st.caption(message)
s = result.settings
m1, m2, m3, m4 = st.columns(4)
m1.metric("Cells perturbed", f"{s['start_cells']:,}")
m2.metric("(cell, gene) pairs", f"{s['pairs']:,}")
m3.metric("Genes ranked", f"{s['genes_scored']:,}")
if result.validation is not None:
    auroc = result.validation.auroc
    m4.metric("Known-gene AUROC", "n/a" if auroc != auroc else f"{auroc:.3f}")
    st.caption(result.validation.sentence(request.known_label))
st.caption(run_caption(result))
st.info(hits_sentence(result))
if baseline_sentence(result):
    st.info(baseline_sentence(result))
columns = {c: st.column_config.NumberColumn(COLUMN_LABELS.get(c, c), help=COLUMN_HELP[c],
                                            format="%d" if c in ("rank", "cells", "expression_rank") else "%.4g")
           for c in COLUMN_HELP if c not in ("gene", "direction")}
columns |= {c: st.column_config.TextColumn(c, help=COLUMN_HELP[c]) for c in ("gene", "direction")}
columns["known"] = st.column_config.CheckboxColumn("known", help=f"One of {request.known_label}.")
order = st.radio("Order the genes by", ["effect", "consensus"], horizontal=True,
                 format_func={"effect": "the model's effect", "consensus": "consensus of effect and mean difference"}.get,
                 disabled="consensus" not in result.ranked, help=COLUMN_HELP["consensus"])
targets = ranked_frame(result, "targets", order)
st.markdown(f"**{plural(len(targets), 'gene')} whose {PERTURB_MODES[s['mode']]} moves cells "
            f"{toward_words(result, than='than their controls')}**")
if not targets.empty:  # when empty, the sentence above the tables says so
    st.dataframe(targets, hide_index=True, height=360, column_config=columns)
away = ranked_frame(result, "away")
with st.expander(f"{plural(len(away), 'gene')} moving cells the other way (never listed as targets)"):
    st.dataframe(away, hide_index=True, height=300, column_config=columns)
st.download_button("Download the ranked genes (CSV)", ranked_csv(result), mime="text/csv", on_click="ignore",
                   file_name=csv_name(dataset, request.selection.start_name, request.selection.goal_name,
                                      request.mode, gene_choice(gene_mode, genes, set_name), s["model"]))
left, right = st.columns(2)
left.plotly_chart(cl.pl.volcano(result.ranked, request.known, score_label=score_label(result)), width="stretch")
with right:
    st.markdown("**Corpus gene sets enriched in the top 50 genes**")
    if result.enrichment is not None and not result.enrichment.empty:
        st.dataframe(result.enrichment[["description", "overlap", "q", "genes"]], hide_index=True,
                     column_config={"q": st.column_config.NumberColumn(format="%.3g")})
    if enrichment_note(result):
        st.info(enrichment_note(result))
    st.caption("Over-representation (hypergeometric, gseapy offline) of the 50 best-ranked genes against all "
               "ranked genes; q: Benjamini-Hochberg over every corpus set tested.")
