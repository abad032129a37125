"""Data page: browse, search and download the pathway corpus; the cell atlas and cell uploads."""

import streamlit as st

import cellang as cl
from cellang.app.data import (
    CARDIOMYOPATHY_DISEASES,
    DEFAULT_CHOICE,
    SEARCH_FIELDS,
    SORT_ORDERS,
    atlas_manifest,
    atlas_table,
    census_filter,
    corpus_choices,
    dataset_table,
    extended_corpus_note,
    fetch_cardiomyocytes,
    filter_sources,
    search_corpus,
    selection_file_stem,
    selection_problem,
    sort_hits,
    terms_help,
    terms_legend,
    terms_summary,
    unbuilt_sources,
)
from cellang.app.text import out_of_range, plural
from cellang.app.uploads import MAX_UPLOAD_MB, read_upload

MAX_LISTED = 1000


@st.cache_data(show_spinner="Preparing the corpus download...")
def whole_corpus_gmt(directory: str) -> bytes:
    corpus = cl.datasets.corpus(directory)
    return corpus.to_gmt(corpus.pathways, compress=True)


st.set_page_config(page_title="cellang · Data", page_icon="🧬", layout="wide")
st.title("Data: the pathway corpus")
choices = corpus_choices()
if len(choices) > 1:
    chosen_corpus = st.radio("Corpus to browse", list(choices), horizontal=True,
                             help="The default corpus ships with cellang; the extended one was built on this "
                                  "machine and adds sources whose terms are non-commercial, mixed or unclear.")
else:
    chosen_corpus = DEFAULT_CHOICE
    with st.expander("Sources that are not in the default corpus"):
        st.caption(extended_corpus_note())
try:
    corpus = cl.datasets.corpus(choices[chosen_corpus])
except (OSError, ValueError, KeyError) as error:
    st.error(f"The {chosen_corpus} corpus could not be read ({error}); showing the default corpus instead.")
    chosen_corpus, corpus = DEFAULT_CHOICE, cl.datasets.corpus()
corpus_dir = choices[chosen_corpus]
st.caption(f"{len(corpus):,} curated human gene sets over {len(corpus.genes):,} genes from "
           f"{terms_summary(corpus)}. Gene identifiers are harmonised to current HGNC symbols.")
if set(corpus.terms) - {"open"}:
    st.warning("This corpus holds sources whose terms are not open (non-commercial, mixed or unclear): check a "
               "source's terms under 'Sources and licences' before you use its sets, commercially above all.")

browse, statistics, cells = st.tabs(["Browse", "Sources and licences", "Cells"])
with browse:
    # Two rows, so that at a 1,400-px window the source chips and the sort choice are not cut off.
    query_col, field_col, order_col = st.columns([4, 1, 2])
    source_col, terms_col = st.columns([3, 1])
    query = query_col.text_input("Search the corpus", placeholder="a name, words of a description or a gene "
                                                                  "(apoptotic, TP53, p53, MYC, ...)")
    field = field_col.selectbox("Search in", SEARCH_FIELDS)
    sources = source_col.multiselect("Sources", corpus.sources, default=corpus.sources)
    terms = terms_col.multiselect("Licence terms", corpus.terms, default=corpus.terms,
                                  help=terms_help())
    order = order_col.selectbox("Sort by", list(SORT_ORDERS),
                                help="best match: sets named after the query first, then sets whose names or "
                                     "descriptions contain it, then sets that only contain the gene.")
    problem = selection_problem(corpus, sources, terms)
    if problem:
        st.warning(problem)
    else:
        result = search_corpus(corpus, query, field, filter_sources(corpus, sources, terms))
        hits = sort_hits(result.hits, order, corpus)
        stem = selection_file_stem(query, field, sources, corpus.sources, terms, corpus.terms)
        if result.note:
            st.info(result.note)
        st.caption(f"{len(result.hits):,} of {len(corpus):,} gene sets match.")
        if not result.hits:
            st.warning("No gene set matches. Try another word, another field, or more sources or terms.")
        else:
            listed = hits[:MAX_LISTED]
            frame = corpus.to_frame(listed)
            st.dataframe(frame.drop(columns=["genes", "licence"]), hide_index=True, height=320)
            if len(result.hits) > MAX_LISTED:
                st.caption(f"Listing the first {MAX_LISTED:,} by {order}; the downloads hold all {len(hits):,}. "
                           "Clicking a column header sorts only the rows listed: use 'Sort by' to order them all.")
            chosen = st.selectbox("Show a gene set", [p.name for p in listed],
                                  format_func=lambda name: f"{name}: {corpus[name].description}")
            pathway = corpus[chosen]
            st.subheader(pathway.description)
            st.markdown(f"**{plural(len(pathway.genes), 'gene')}** · source **{pathway.source}** · licence "
                        f"{pathway.licence} ({corpus.source_terms.get(pathway.source, '?')} terms) · split "
                        f"**{pathway.split}**" + (" · in the 1000-set benchmark" if pathway.benchmark else ""))
            st.code(" ".join(pathway.genes), language=None, wrap_lines=True)
            left, right = st.columns(2)
            left.download_button("Download matching sets (GMT)", corpus.to_gmt(hits), file_name=f"{stem}.gmt",
                                 mime="text/plain")
            right.download_button("Download matching sets (CSV)", corpus.to_frame(hits).to_csv(index=False),
                                  file_name=f"{stem}.csv", mime="text/csv")
    whole_name = "cellang-pathways.gmt.gz" if chosen_corpus == DEFAULT_CHOICE else "cellang-pathways-extended.gmt.gz"
    st.download_button(f"Download the whole {chosen_corpus.split()[0]} corpus (GMT, gzip)",
                       whole_corpus_gmt(str(corpus_dir)), file_name=whole_name, mime="application/gzip")

with statistics:
    table = corpus.source_table()
    st.dataframe(table, hide_index=True, column_config={
        "sets": st.column_config.NumberColumn(help="gene sets in the corpus after quality control (train + test)"),
        "kept out near benchmark": st.column_config.NumberColumn(
            help="sets left out of the corpus because they resemble a pathway of the frozen benchmark"),
        "licence basis": st.column_config.TextColumn(help="where the licence statement comes from"),
    })
    st.download_button("Download this table (CSV)", table.to_csv(index=False),
                       file_name=f"cellang-corpus-sources{'' if chosen_corpus == DEFAULT_CHOICE else '-extended'}.csv",
                       mime="text/csv")
    st.caption("Licence terms: open sources form the default corpus; the others only the extended one.")
    st.dataframe(terms_legend(), hide_index=True)
    unbuilt = unbuilt_sources(corpus)
    if not unbuilt.empty:
        st.subheader("Sources not built here")
        st.caption(f"{plural(len(unbuilt), 'source')} of the catalogue are not in this corpus; the last column "
                   "gives the command that builds a corpus with them.")
        st.dataframe(unbuilt, hide_index=True)
    left, right = st.columns(2)
    left.plotly_chart(cl.pl.corpus_sources(table), width="stretch")
    right.plotly_chart(cl.pl.corpus_sizes(corpus.to_frame()), width="stretch")
    st.caption("Quality control: symbols harmonised; genes in fewer than 5 sets dropped; sets kept when at "
               "least 90% of their genes map; sizes 5 to 500; identical sets removed; near-duplicates "
               "(Jaccard >= 0.7) grouped and kept on one side of the train/test split; sets of later sources "
               "that resemble a frozen benchmark pathway kept out.")

with cells:
    manifest = atlas_manifest()
    st.subheader("The embedded cell atlas")
    st.caption(f"{manifest['totals']['cells']:,} real single cells in {manifest['totals']['datasets']} datasets from "
               "public registry packages, genes harmonised to approved HGNC symbols, original values and labels "
               "kept. No registry package ships heart cells: fetch cardiomyocytes from the CELLxGENE Census below "
               "(needs internet) or upload your own.")
    st.dataframe(atlas_table(), hide_index=True)
    for entry in manifest["datasets"]:
        with st.expander(f"{entry['name']}: {plural(entry['cells'], 'cell')} by type and state ({entry['value_kind']})"):
            st.dataframe(dataset_table(entry["name"]), hide_index=True)
            st.caption(" ".join(entry["notes"]))

    st.subheader("Check your own cells")
    upload = st.file_uploader(f"Upload an .h5ad file (up to {MAX_UPLOAD_MB} MB; it stays in this browser session "
                              "and is never saved)", type=["h5ad"], key="cells_upload", max_upload_size=MAX_UPLOAD_MB)
    if upload is not None:
        if st.session_state.get("uploaded_cells_id") != upload.file_id:
            with st.spinner(f"Reading {upload.name}..."):
                st.session_state["uploaded_cells"] = read_upload(upload)
            st.session_state["uploaded_cells_id"] = upload.file_id
        result = st.session_state["uploaded_cells"]
        for level, message in result.messages():
            {"error": st.error, "warning": st.warning, "note": st.info}[level](message)
        if result.ok:
            st.success(f"{result.name} can be used: {plural(result.adata.n_obs, 'cell')} x "
                       f"{plural(result.adata.n_vars, 'gene')}.")
        if result.adata is not None and result.label_column():
            st.caption(f"Cells per '{result.label_column()}':")
            st.dataframe(result.label_table(), hide_index=True)

    st.subheader("Heart cells from the CELLxGENE Census")
    diseases = st.multiselect("Compare cardiomyocytes of", CARDIOMYOPATHY_DISEASES, default=CARDIOMYOPATHY_DISEASES)
    max_cells = st.number_input("At most this many cells (random sample, seed 0; 100 to 200,000)", value=5_000,
                                step=1_000)
    problem = out_of_range("Cells to fetch", max_cells, 100, 200_000) or (
        None if diseases else "Choose at least one disease state to compare.")
    if problem:
        st.error(problem)
    else:
        st.code(census_filter(diseases, int(max_cells)), language=None, wrap_lines=True)
    if st.button("Fetch from the Census", disabled=problem is not None):
        try:
            with st.spinner("Querying the CELLxGENE Census..."):
                st.session_state["census_cells"] = fetch_cardiomyocytes(diseases, int(max_cells))
        except cl.CellangError as error:  # the Census cannot be reached: the reason
            st.error(str(error))
    if "census_cells" in st.session_state:
        fetched = st.session_state["census_cells"]
        st.success(f"Fetched {fetched.n_obs:,} cells x {fetched.n_vars:,} genes (raw counts) for this session.")
        st.dataframe(fetched.obs.groupby(["cell_type", "state"], observed=True).size().rename("cells").reset_index(),
                     hide_index=True)
