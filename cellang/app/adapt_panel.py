"""The "Adapt to these cells" panel of the Cell embeddings and In-silico deletion pages."""

from __future__ import annotations

import streamlit as st

from cellang.app.session_models import remember, remembered, show_remembered, train_with_bar
from cellang.embedding.adapt import DEFAULT_MINUTES, adapt_encoder
from cellang.embedding.loading import CellModel, shown_path

MAX_PAGE_MINUTES = 60.0  # the page's limit: a longer run belongs in cellang adapt


def adapted_model(key: str, data_key: str, model: CellModel) -> str | None:
    """The model adapted in this session from ``model`` to the cells ``data_key``, if any."""
    return remembered(f"{key}_adapted", (data_key, model.name))


def adapt_panel(cells, model: CellModel, data_key: str, data_name: str,  # type: ignore[no-untyped-def]
                key: str) -> str | None:
    """Draw the panel for ``cells`` (approved symbols) and the chosen encoder; on its button, adapt the encoder to
    them within the budget asked (progress with time left) and save it to the models folder. Returns the name of
    the model adapted in this session for these cells and this base (None if none)."""
    with st.expander(f"Adapt {model.name} to these cells (self-supervised, no labels needed)"):
        st.caption("Fine-tunes the encoder on these cells' own expression (masked-value or masked-gene training, as "
                   "in pretraining) within a time budget, and saves the result as a model of your own: it then "
                   "appears in the encoder lists of both cell pages. On cells an encoder was not trained on, a few "
                   "minutes of adapting is what lifts it to PCA's level or above (README, leave-one-dataset-out).")
        minutes = st.number_input("Time budget (minutes)", min_value=0.5, max_value=MAX_PAGE_MINUTES,
                                  value=DEFAULT_MINUTES, step=0.5, key=f"{key}_minutes")
        if st.button(f"Adapt {model.name} to these cells", key=f"{key}_button"):
            result = train_with_bar(f"Adapting {model.name}...", "The encoder could not be adapted",
                                    lambda progress: adapt_encoder(cells, model.name, minutes=float(minutes),
                                                                   data_name=data_name, progress=progress))
            if result is not None:
                remember(f"{key}_adapted", (data_key, model.name), result.name,
                         f"{model.name} adapted to these cells and saved as {result.name} "
                         f"({shown_path(result.directory)}): {result.record['steps']:,} steps in {result.seconds:.0f} s. "
                         "It is in the encoder list now.")
        show_remembered(f"{key}_adapted", (data_key, model.name), "Adapted")
    return adapted_model(key, data_key, model)
