"""Pathway completion page: propose genes to add to a list, each with the training sets that support it; or
hide part of a gene set and see how much of it comes back (a test)."""

import streamlit as st

import cellang as cl
from cellang.app.completion_report import (
    EVIDENCE_SETS,
    EXPAND,
    EXPAND_N,
    MAX_RANKED,
    MAX_SAMPLED,
    MAX_UPLOAD_BYTES,
    MODES,
    TEST,
    CorpusResources,
    complete,
    completion_request,
    load_completer,
    pasted_input,
    pathway_choices,
    pathway_input,
    pathway_label,
    read_gene_file,
)
from cellang.app.text import plural

SOURCES = ("A corpus pathway", "Paste genes", "Upload a file")
MODE_LABELS = {"ranked": "ranked (deterministic)", "sample": "sample (temperature, top-k)"}


@st.cache_resource(show_spinner="Loading the pathway model...")
def shipped_completer():  # type: ignore[no-untyped-def]
    return load_completer()


@st.cache_data(show_spinner="Reading the gene file...", max_entries=4)
def parsed_upload(name: str, data: bytes):  # type: ignore[no-untyped-def]
    """Parsed once per file content: reruns (any widget change) reuse it."""
    return read_gene_file(name, data)


@st.cache_resource(show_spinner="Indexing the corpus...")
def corpus_resources() -> CorpusResources:
    return CorpusResources.build(cl.datasets.corpus())


st.set_page_config(page_title="cellang · Pathway completion", page_icon="🧬", layout="wide")
st.title("Pathway completion")
st.caption("Give a gene list and get genes to add to it, each with the training sets that support it and how much "
           "of its score came from them and from the pathway language model. Or test the completer: hide part of "
           "the list and see how much comes back (hidden genes it finds are *recovered*, others *novel*).")
try:
    completer = shipped_completer()
except FileNotFoundError as error:
    st.error(f"{error} Reload this page when it is there.")  # the checkpoint registry's sentence
    st.stop()
corpus = cl.datasets.corpus()
rankings = completer.rankings()

# --- input -------------------------------------------------------------------------------------
gene_input = None
source = st.radio("Genes from", SOURCES, horizontal=True)
if source == SOURCES[0]:
    query = st.text_input("Search the corpus", placeholder="a name, words of a description, or a gene")
    choices = pathway_choices(corpus, query)
    if choices.note:
        st.info(choices.note)
    if not query.strip():
        st.caption(f"Showing the {choices.total:,} benchmark pathways: they were held out of training, so the "
                   "model never saw them and completing them is a fair test. Search to pick any corpus pathway; "
                   "ones seen in training are marked.")
    if not choices.pathways:
        st.warning("No pathway matches. Try another word or a gene symbol.")
    else:
        chosen = st.selectbox("Pathway", [p.name for p in choices.pathways], index=choices.default_index,
                              format_func=lambda name: pathway_label(corpus[name]))
        gene_input = pathway_input(corpus[chosen])
        st.caption(f"{plural(len(gene_input.genes), 'gene')} · source {corpus[chosen].source}")
elif source == SOURCES[1]:
    text = st.text_area("Genes", placeholder="TP53 MDM2 CDKN1A BAX ... (spaces, commas, tabs or new lines)")
    gene_input = pasted_input(text)
    st.caption(f"{plural(len(gene_input.genes), 'identifier')}. Symbols, previous symbols, aliases, Ensembl and Entrez ids "
               "are harmonised to approved symbols.")
else:
    upload = st.file_uploader(f"A GMT file or a gene list (at most {MAX_UPLOAD_BYTES // 2**20} MB)",
                              type=["gmt", "gz", "txt", "csv", "tsv", "list"])
    if upload is not None:
        try:
            uploaded = parsed_upload(upload.name, upload.getvalue())
        except cl.CellangError as error:  # nothing could be read: the reason
            st.error(str(error))
        else:
            if uploaded.problems:
                st.warning(f"{len(uploaded.problems)} problem(s) reading {upload.name}, skipped: "
                           + "; ".join(uploaded.problems[:5]) + (" ..." if len(uploaded.problems) > 5 else ""))
            sets = {s.name: s for s in uploaded.gene_sets}
            name = st.selectbox("Gene set", list(sets), format_func=lambda n: f"{n} ({plural(len(sets[n].genes), 'gene')})")
            gene_input = sets[name]

# --- settings ----------------------------------------------------------------------------------
task = st.radio("What to do", (EXPAND, TEST), horizontal=True, key="task",
                help="Expand: every gene given is shown to the model, which proposes genes to add. Test: part of "
                     "the list is hidden and predicted back, with recall and a p-value.")
left, middle, right = st.columns(3)
# No min/max on the number fields: the browser would keep the last valid value and hide its complaint in a
# tooltip; request_problems() says what is wrong next to the button instead.
if task == EXPAND:
    mask_ratio = 0.0
    n_genes = left.number_input(f"Genes to add (at most {MAX_RANKED})", value=EXPAND_N, step=1, key="n_add")
    seed = middle.number_input("Seed", value=0, step=1, key="seed",
                               help="Orders the genes shown to the model (and draws the samples in sample mode).")
else:
    mask_ratio = left.slider("Mask ratio", 0.05, 0.95, 0.8, 0.05, key="mask_ratio",
                             help="Share of the genes hidden from the model, then predicted back.")
    seed = middle.number_input("Seed", value=0, step=1, key="seed",
                               help="Chooses which genes are hidden (and the samples in sample mode).")
    n_genes = right.number_input(f"Genes to predict (0: as many as were hidden; at most {MAX_RANKED})", value=0,
                                 step=1, key="n_predict")
mode = st.radio("Mode", MODES, horizontal=True, format_func=MODE_LABELS.get, key="mode")
engine, ranking = completer, ""
if mode == "ranked" and len(rankings) > 1:
    ranking = st.radio("Ranking", list(rankings), horizontal=True, key="ranking")
    engine = rankings[ranking]
st.caption(engine.describe() if mode == "ranked" else "Sampling draws from the language model alone.")
temperature, top_k, n_samples = 1.0, 50, 8
if mode == "sample":
    a, b, c = st.columns(3)
    temperature = a.slider("Temperature", 0.1, 2.0, 1.0, 0.1)
    top_k = b.number_input("Top-k (1 to 1000)", value=50, step=1)
    n_samples = c.number_input("Samples (1 to 32)", value=8, step=1)
    st.caption(f"Sampling draws genes one at a time; it predicts at most {MAX_SAMPLED} genes here.")
request, problems = completion_request(gene_input.genes if gene_input else (), float(mask_ratio), int(seed),
                                       int(n_genes), mode, float(temperature), int(top_k), int(n_samples))
if request is None:
    st.session_state.pop("completion", None)  # an earlier result does not answer this input
for problem in problems:
    st.error(problem)
if st.button("Complete", type="primary", disabled=bool(problems)) and request is not None:
    try:
        with st.spinner("Completing..."):
            report = complete(engine, request, gene_input, corpus_resources(), completer.universe)
    except cl.CellangError as error:
        st.session_state.pop("completion", None)
        st.error(f"Cannot complete: {error}")
    else:
        st.session_state["completion"] = ((request, ranking), report)

# --- results -----------------------------------------------------------------------------------
stored = st.session_state.get("completion")
if stored is not None and stored[0] != (request, ranking):
    st.info("The input or settings changed since the last completion: press Complete to update the results.")
elif stored is not None:
    report = stored[1]
    completion = report.completion
    st.header("Result")
    for note in report.warnings:
        st.warning(note)
    if report.renamed:
        shown = ", ".join(f"{old} → {new}" for old, new in list(report.renamed.items())[:10])
        st.caption(f"{len(report.renamed)} identifier(s) renamed to approved symbols: {shown}")
    st.markdown(f"**Prompt** ({plural(len(completion.prompt), 'gene')} shown to the model)")
    st.code(" ".join(completion.prompt), language=None, wrap_lines=True)
    if report.metrics is not None:
        recovered = report.predictions[report.predictions["status"] == "recovered"]
        st.markdown(f"**Hidden genes recovered** ({len(recovered)} of {len(completion.masked)})")
        st.code(" ".join(f"{g} (#{r})" for g, r in zip(recovered["gene"], recovered["rank"])) or "none",
                language=None, wrap_lines=True)
        if report.missed:
            st.caption(f"Hidden but not predicted ({len(report.missed)}): {' '.join(report.missed[:60])}"
                       + (" ..." if len(report.missed) > 60 else ""))
        for column, (label, value) in zip(st.columns(4), report.metric_rows().items()):
            column.metric(label, value)
        st.caption(f"Recall: share of hidden genes predicted. Precision: share of predictions that were hidden. "
                   f"p: one-sided Fisher exact test of the overlap among the {report.metrics.universe:,} genes "
                   "the model knows.")
    else:
        st.caption("Nothing was hidden: every prediction is a gene proposed to add to the list.")
    novel = report.predictions[report.predictions["status"] == "novel"]
    st.subheader(f"Genes to add ({len(novel)})" if report.expanded else f"Novel predictions ({len(novel)})")
    st.dataframe(novel.drop(columns="status"), hide_index=True, height=min(38 + 35 * len(novel), 420),
                 column_config={
                     "score": st.column_config.NumberColumn(format="%.4g"),
                     "from_retrieval": st.column_config.NumberColumn(
                         format="%.4g", help="Part of the score from the training sets that hold the gene"),
                     "from_model": st.column_config.NumberColumn(
                         format="%.4g", help="Part of the score the model added (or took away)"),
                     "supporting_sets": st.column_config.NumberColumn(
                         help="Training sets that hold the gene and share genes with the prompt"),
                     "top_supporting_sets": st.column_config.TextColumn(
                         help="The sets contributing most: name (prompt genes in the set/set size)"),
                 })
    st.caption(f"Method: {completion.method}. Score: mean probability of being a further member (ranked) or "
               "share of samples that drew the gene (sample).")

    st.subheader("Why each gene was suggested")
    if report.evidence.empty:
        st.caption("This completer has no retrieval datastore, so it cannot name the training sets behind a gene.")
    else:
        ranks = dict(zip(report.predictions["gene"], report.predictions["rank"]))
        gene = st.selectbox("Predicted gene", list(ranks), format_func=lambda g: f"#{ranks[g]} {g}",
                            key="evidence_gene")
        evidence = report.evidence_of(gene)
        for column, (label, value) in zip(st.columns(4), evidence.shares.items()):
            column.metric(label, value)
        st.dataframe(evidence.table, hide_index=True, height=min(38 + 35 * (evidence.sets + 1), 420),
                     column_config={"contribution": st.column_config.NumberColumn(format="%.4g")})
        st.caption(report.evidence_note())

    st.subheader("Network")
    st.iframe(report.network_html, height=600)  # offline, escaped HTML built by cellang
    st.caption(report.network_caption())

    st.subheader("What the completed genes resemble")
    st.markdown(report.reading)
    if report.significance_note():
        st.caption(report.significance_note())
    if not report.enrichment.empty:
        st.dataframe(report.enrichment, hide_index=True,
                     column_config={"p": st.column_config.NumberColumn(format="%.2e"),
                                    "q": st.column_config.NumberColumn(format="%.2e")})
    st.caption("Over-representation of the predicted genes in every corpus pathway (hypergeometric test, gseapy, "
               "computed locally; q: Benjamini-Hochberg over all pathways).")

    left, middle, right = st.columns(3)
    left.download_button("Download the completion (CSV)", report.csv, file_name=f"{report.file_stem}.csv",
                         mime="text/csv", on_click="ignore")
    middle.download_button("Download the completed set (GMT)", report.gmt, file_name=f"{report.file_stem}.gmt",
                           mime="text/plain", on_click="ignore")
    if not report.evidence.empty:
        right.download_button("Download the evidence (CSV)", report.evidence_csv,
                              file_name=f"{report.file_stem}_evidence.csv", mime="text/csv", on_click="ignore")
        st.caption(f"The evidence CSV: per predicted gene its {EVIDENCE_SETS} best supporting training sets, the "
                   "others in one row and the model's row; per gene the contribution column adds up to the score.")
