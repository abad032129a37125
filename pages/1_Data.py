"""Data page: browse, search and download the pathway corpus."""

import streamlit as st

from cellang_core import plots
from cellang_core.corpus import Corpus, load_corpus
from cellang_core.corpus.store import SEARCH_FIELDS
from cellang_core.genes import load_resolver
from cellang_core.tasks.browse import search_corpus

MAX_LISTED = 1000


@st.cache_data(show_spinner="Preparing the corpus download...")
def whole_corpus_gmt() -> bytes:
    return Corpus.to_gmt(load_corpus().pathways, compress=True)


st.set_page_config(page_title="cellang · Data", page_icon="🧬", layout="wide")
st.title("Data: the pathway corpus")
corpus = load_corpus()
st.caption(f"{len(corpus):,} curated human gene sets over {len(corpus.genes):,} genes from "
           f"{len(corpus.sources)} licence-clean sources. Gene identifiers are harmonised to current "
           "HGNC symbols.")

browse, statistics = st.tabs(["Browse", "Statistics"])
with browse:
    query_col, field_col, source_col = st.columns([3, 1, 3])
    query = query_col.text_input("Search the corpus", placeholder="a name, words of a description, or a gene (TP53, p53, ...)")
    field = field_col.selectbox("Search in", SEARCH_FIELDS)
    sources = source_col.multiselect("Sources", corpus.sources, default=corpus.sources)
    result = search_corpus(corpus, load_resolver(), query, field, sources)
    if result.note:
        st.info(result.note)
    st.caption(f"{len(result.hits):,} of {len(corpus):,} gene sets match.")
    if not result.hits:
        st.warning("No gene set matches. Try another word, another field, or more sources.")
    else:
        listed = result.hits[:MAX_LISTED]
        frame = corpus.to_frame(listed)
        st.dataframe(frame.drop(columns=["genes", "licence"]), hide_index=True, height=320)
        if len(result.hits) > MAX_LISTED:
            st.caption(f"Listing the first {MAX_LISTED:,}; the downloads hold all {len(result.hits):,}.")
        chosen = st.selectbox("Show a gene set", [p.name for p in listed],
                              format_func=lambda name: f"{name}: {corpus[name].description}")
        pathway = corpus[chosen]
        st.subheader(pathway.description)
        st.markdown(f"**{len(pathway.genes)} genes** · source **{pathway.source}** · licence "
                    f"{pathway.licence} · split **{pathway.split}**"
                    + (" · in the 1000-set benchmark" if pathway.benchmark else ""))
        st.code(" ".join(pathway.genes), language=None, wrap_lines=True)
        left, right = st.columns(2)
        left.download_button("Download matching sets (GMT)", Corpus.to_gmt(result.hits),
                             file_name="cellang-pathways-selection.gmt", mime="text/plain")
        right.download_button("Download matching sets (CSV)", corpus.to_frame(result.hits).to_csv(index=False),
                              file_name="cellang-pathways-selection.csv", mime="text/csv")
    st.download_button("Download the whole corpus (GMT, gzip)", whole_corpus_gmt(),
                       file_name="cellang-pathways.gmt.gz", mime="application/gzip")

with statistics:
    table = corpus.source_table()
    st.dataframe(table, hide_index=True)
    st.download_button("Download this table (CSV)", table.to_csv(index=False),
                       file_name="cellang-corpus-sources.csv", mime="text/csv")
    left, right = st.columns(2)
    left.plotly_chart(plots.sets_per_source(table), width="stretch")
    right.plotly_chart(plots.size_distribution(corpus.to_frame()), width="stretch")
    st.caption("Quality control: symbols harmonised; genes in fewer than 5 sets dropped; sets kept when at "
               "least 90% of their genes map; sizes 5 to 500; identical sets removed; near-duplicates "
               "(Jaccard >= 0.7) grouped and kept on one side of the 95/5 train/test split.")
