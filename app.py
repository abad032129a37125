"""cellang: `streamlit run app.py`. Names the pages (the home page is "Home" in the navigation, not the
file name) and draws the home page: what the app does and what is loaded."""

import streamlit as st

from cellang.app.overview import overview


def home() -> None:
    st.set_page_config(page_title="cellang", page_icon="🧬", layout="wide")
    st.title("cellang: do cells have a language?")
    st.markdown(
        "Genes are words. cellang trains language models on them and lets you play with the results:\n"
        "- **Data**: browse the pathway corpus (curated human gene sets), search it, download GMT files.\n"
        "- **Pathway language model**: mask most of a pathway and let a transformer write the rest.\n"
        "- **Cell encoders**: binned-expression and rank-value transformers that embed single cells.\n"
        "- **In-silico deletion**: remove a gene from a cell and measure how far the cell moves.\n"
    )
    facts = overview()
    left, middle, right = st.columns(3)
    # The second line of a metric is a note here, not a change: no arrow, no colour.
    left.metric("Pathway corpus", f"{facts.corpus_sets:,} gene sets", f"{facts.corpus_genes:,} genes",
                delta_color="off", delta_arrow="off")
    middle.metric("Gene table", f"{facts.gene_table_genes:,} genes", "HGNC + org.Hs.eg.db", delta_color="off",
                  delta_arrow="off")
    right.metric("Compute device", facts.device)

    st.subheader("Models")
    st.table(
        [{"model": m.title, "checkpoint": f"checkpoints/{m.key}",
          "status": "loaded" if m.available else "not shipped yet"} for m in facts.models]
    )
    st.caption("All data ships with the app and comes from public registry packages; see the Data page for "
               "sources and licences.")


st.navigation([
    st.Page(home, title="Home", icon="🧬", default=True),
    st.Page("pages/1_Data.py", title="Data"),
    st.Page("pages/2_Pathway_completion.py", title="Pathway completion"),
    st.Page("pages/3_Cell_embeddings.py", title="Cell embeddings"),
    st.Page("pages/4_In_silico_deletion.py", title="In-silico deletion"),
]).run()
