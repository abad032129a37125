"""Cell embeddings page: embed cells with a cell encoder, map them (UMAP) and score them against PCA."""

import streamlit as st

import cellang as cl
from cellang.app.adapt_panel import adapt_panel
from cellang.app.fine_tune_panel import fine_tune_panel
from cellang.app.cell_models import (
    checkpoint_stamp,
    find_cell_model,
    models_caption,
    no_models_message,
    scan_cell_models,
)
from cellang.app.explorer import (
    N_HVG,
    N_PCS,
    UMAP_NEIGHBOURS,
    VIEWS,
    ExplorerResult,
    ResultCache,
    Scores,
    atlas_choices,
    default_label_column,
    embed_and_map,
    hover_frame,
    label_choices,
    score,
    side_by_side,
    view_title,
)
from cellang.app.exports import embedding_csv, embedding_h5ad, file_stem
from cellang.app.text import MAX_SEED, out_of_range, plural
from cellang.app.uploads import MAX_UPLOAD_MB, read_upload

UPLOAD = "upload"  # the dataset key of the session's uploaded cells
MAX_CACHED = 8  # embedded datasets kept in memory


@st.cache_resource(show_spinner="Reading the cells...", max_entries=4)
def atlas_cells(name: str):  # type: ignore[no-untyped-def]
    return cl.datasets.cells(name)


@st.cache_resource
def embeddings_cache() -> ResultCache:
    """(dataset, model, checkpoint folder, seed, its stamp) -> ExplorerResult for all sessions. Not a cached
    function, so the progress bar is drawn by this page, never replayed from a cache."""
    return ResultCache(MAX_CACHED)


def embedded(request: tuple, model, cells, progress) -> ExplorerResult:  # type: ignore[no-untyped-def]
    dataset, seed = request[0], request[3]
    return embeddings_cache().get(request, lambda: embed_and_map(
        cells, model, seed=seed, progress=progress, harmonise=dataset.startswith("upload:")))  # atlas: harmonised


@st.cache_data(show_spinner="Scoring the embeddings...", max_entries=32)
def scored(dataset: str, model: str, folder: str, seed: int, stamp: str, label_column: str | None,
           _result: ExplorerResult) -> Scores:
    return score(_result, label_column, seed=seed)


st.set_page_config(page_title="cellang · Cell embeddings", page_icon="🧬", layout="wide")
st.title("Cell embeddings")
st.caption("Embed single cells with a cell language model, draw them on a map (UMAP) and score how well the "
           "embedding groups cells of one type, against the usual baseline: PCA of the highly variable genes.")
st.caption("The cells are real: the app's atlas of public registry datasets (see the Data page for sources and "
           "licences), or your own .h5ad. No registry package ships heart cells, so there are no cardiomyocytes "
           "here: hsmm (human skeletal muscle myoblasts differentiating to myotubes) is the striated-muscle "
           "stand-in.")

# --- data and model ----------------------------------------------------------------------------
with st.expander("Use your own cells (.h5ad)"):
    upload = st.file_uploader(f"Upload an .h5ad file (up to {MAX_UPLOAD_MB} MB)", type=["h5ad"],
                              key="embedding_upload", max_upload_size=MAX_UPLOAD_MB)
    if upload is not None and st.session_state.get("uploaded_cells_id") != upload.file_id:
        with st.spinner(f"Reading {upload.name}..."):
            st.session_state["uploaded_cells"] = read_upload(upload)
        st.session_state["uploaded_cells_id"] = upload.file_id
    st.caption("A file uploaded here or on the Data page stays in this browser session only; it is never saved "
               "and never changes the shipped atlas.")
    uploaded = st.session_state.get("uploaded_cells")
    if uploaded is not None and not uploaded.ok:
        for level, message in uploaded.messages():
            {"error": st.error, "warning": st.warning, "note": st.info}[level](message)

choices = atlas_choices()
if uploaded is not None and uploaded.ok:
    choices = {UPLOAD: f"Your upload: {uploaded.name} ({plural(uploaded.adata.n_obs, 'cell')})"} | choices
scan = scan_cell_models()
models = {m.name: m for m in scan.models}
left, middle, right = st.columns([3, 2, 1])
dataset = left.selectbox("Cells", list(choices), format_func=choices.get)
model = middle.selectbox("Cell encoder", list(models), format_func=lambda name: models[name].label)
seed = right.number_input("Seed", value=0, step=1,  # no bounds: the range check below says what is wrong
                          help="Seeds the PCA baseline, the UMAP and the clustering behind the scores.")
st.caption(models_caption(scan))
dataset_key = f"upload:{st.session_state.get('uploaded_cells_id')}" if dataset == UPLOAD else dataset
problem = (None if model in models else no_models_message(scan)) or out_of_range("Seed", seed, 0, MAX_SEED)
if problem:
    st.error(problem)
folder = str(models[model].path) if model in models else ""
request = (dataset_key, model, folder, int(seed), checkpoint_stamp(folder) if folder else "missing")
if st.button("Embed cells", type="primary", disabled=problem is not None):
    st.session_state["embedding_request"] = request

stored = st.session_state.get("embedding_request")
if problem:
    st.stop()
if stored != request:
    st.info("Choose the cells and an encoder, then press **Embed cells**." if stored is None else
            "The cells, encoder or seed changed: press **Embed cells** to embed them.")
    st.stop()

cells = uploaded.adata if dataset == UPLOAD else atlas_cells(dataset)
bar = st.progress(0.0, text="Embedding the cells...")
try:
    result = embedded(request, models[model], cells, bar.progress)
except cl.CellangError as error:
    bar.empty()
    st.session_state.pop("embedding_request", None)
    st.error(str(error))
    st.stop()
bar.empty()

# --- map and scores ----------------------------------------------------------------------------
st.success(result.produced_by())
for level, message in result.messages:
    (st.warning if level == "warning" else st.info)(message)
obs = result.adata.obs
labels = label_choices(obs)
default_label = default_label_column(obs)
columns = [str(c) for c in obs.columns]
a, b, c = st.columns(3)
view = a.radio("Embedding", VIEWS, format_func=lambda v: view_title(model, v), horizontal=True)
colour = b.selectbox("Colour by", columns, index=columns.index(default_label) if default_label in columns else 0,
                     disabled=not columns, placeholder="(no obs columns: one colour)")
label_column = c.selectbox("Score against the labels in", labels,
                           index=labels.index(default_label) if default_label in labels else 0) if labels else None

plot_column, score_column = st.columns([5, 6])
with plot_column:
    st.subheader(f"UMAP of the {view_title(model, view)}")
    hover = hover_frame(result, [colour, label_column, "cell_type", "batch", "state"])
    st.plotly_chart(cl.pl.scatter(result.umap[view], None if colour is None else obs[colour], colour,
                                            hover), width="stretch")
    st.caption(f"{plural(result.adata.n_obs, 'cell')}. Each dot is a cell; cells with similar embeddings lie close together "
               f"(UMAP over each cell's {UMAP_NEIGHBOURS} nearest neighbours, seed {seed}).")
with score_column:
    st.subheader("Scores")
    scores = scored(*request, label_column, _result=result)
    if scores.table is None:
        for level, message in scores.messages:
            (st.warning if level == "warning" else st.info)(message)
    else:
        number = st.column_config.NumberColumn(format="%.3f", width="small")
        st.dataframe(scores.table, hide_index=True,
                     column_config={name: number for name in ("AvgBIO", "NMI", "ARI", "ASW", "batch ASW")
                                            if name in scores.table.columns})
        for level, message in scores.messages:
            (st.warning if level == "warning" else st.caption)(message)
        st.caption(f"Against '{scores.label_column}'. AvgBIO (scIB): the mean of NMI and ARI (agreement of a "
                   "clustering of the embedding with the labels) and ASW (label silhouette, rescaled to 0-1); "
                   "higher is better. Batch ASW: 1 when batches mix within each cell type, 0 when they separate. "
                   f"PCA baseline: {N_HVG:,} highly variable genes, scaled, up to {N_PCS} PCs.")

# --- adapt the encoder to these cells, and compare ---------------------------------------------------
data_name = uploaded.name.removesuffix(".h5ad") if dataset == UPLOAD else dataset
adapted_name = adapt_panel(result.adata, models[model], dataset_key, data_name, key="embedding")
fine_tune_panel(result.adata, models[model], dataset_key, data_name, key="embedding")
adapted_model = find_cell_model(adapted_name) if adapted_name else None
if adapted_model is not None:
    st.subheader(f"PCA, {model} and {adapted_name}, side by side")
    adapted_request = (dataset_key, adapted_name, str(adapted_model.path), int(seed),
                       checkpoint_stamp(str(adapted_model.path)))
    bar = st.progress(0.0, text=f"Embedding the cells with {adapted_name}...")
    try:
        adapted = embedded(adapted_request, adapted_model, cells, bar.progress)
    except cl.CellangError as error:
        st.error(str(error))
        adapted = None
    bar.empty()
    if adapted is not None:
        maps = [(result.umap["pca"], view_title(model, "pca")), (result.umap[view], view_title(model, view)),
                (adapted.umap[view], view_title(adapted_name, view))]
        for column, (coordinates, title) in zip(st.columns(3), maps):
            column.caption(title)
            column.plotly_chart(cl.pl.scatter(coordinates, None if colour is None else obs[colour], colour,
                                                        hover), width="stretch", key=f"side_{title}")
        compared = side_by_side(result, adapted, label_column, seed=int(seed))
        if compared.table is not None:
            st.dataframe(compared.table, hide_index=True, column_config={
                name: st.column_config.NumberColumn(format="%.3f", width="small")
                for name in ("AvgBIO", "NMI", "ARI", "ASW", "batch ASW")})

stem = file_stem(data_name, model)
left, right = st.columns(2)
left.download_button("Download the embedding (CSV)", lambda: embedding_csv(result, view),
                     file_name=f"{stem}_{view}.csv", mime="text/csv", on_click="ignore")
right.download_button("Download the AnnData with embeddings (.h5ad)", lambda: embedding_h5ad(result),
                      file_name=f"{stem}.h5ad", mime="application/x-hdf5", on_click="ignore")
st.caption("CSV: one row per cell: its id, the model and its checkpoint folder, every obs column, the "
           f"{view_title(model, view)} dimensions and the UMAP coordinates. .h5ad: the cells as read, with every "
           f"embedding and map in obsm ({', '.join(sorted(result.adata.obsm))}) and the model in "
           "uns['cellang_embedding'].")
