"""The "Fine-tune on these cells' states" panel of the Cell embeddings and In-silico deletion pages."""

from __future__ import annotations

import streamlit as st

from cellang.app.deletion import state_columns
from cellang.app.session_models import remember, remembered, show_remembered, train_with_bar
from cellang.embedding.classify import DEFAULT_MINUTES, fine_tune_classifier
from cellang.embedding.loading import CellModel, shown_path

MAX_PAGE_MINUTES = 30.0  # the page's limit: a longer run belongs in cellang classify


def fine_tuned_model(key: str, data_key: str, model: CellModel, column: str) -> str | None:
    """The classifier fine-tuned in this session from ``model`` on the cells ``data_key``'s ``column``, if any."""
    return remembered(f"{key}_fine_tuned", (data_key, model.name, column))


def fine_tune_panel(cells, model: CellModel, data_key: str, data_name: str,  # type: ignore[no-untyped-def]
                    key: str, column: str | None = None) -> str | None:
    """Draw the panel for ``cells`` (approved symbols) and the chosen encoder; on its button, fine-tune the encoder
    to tell the states of an obs column apart (held-out test cells, early stopping) and save it to the models
    folder. column: the state column to offer first. Returns the name of the model fine-tuned in this session on
    these cells, this base and that column (None if none)."""
    columns = state_columns(cells.obs)
    with st.expander(f"Fine-tune {model.name} on these cells' states (labelled cells; transfer learning)"):
        st.caption("Trains the encoder with a classification head to tell the states of a column apart (as "
                   "Geneformer was fine-tuned on non-failing and failing cardiomyocytes before its deletions were "
                   "scored). A fifth of each state's cells is held out and scored once at the end; training stops "
                   "when held-out validation cells stop improving. The model is saved as one of your own and "
                   "appears in the encoder lists of both cell pages.")
        if not columns:
            st.info("These cells have no obs column with 2 to 60 states to learn.")
            return None
        left, right = st.columns(2)
        chosen = left.selectbox("States to learn (obs column)", columns,
                                index=columns.index(column) if column in columns else 0, key=f"{key}_ft_column")
        minutes = right.number_input("Time budget (minutes)", min_value=0.5, max_value=MAX_PAGE_MINUTES,
                                     value=DEFAULT_MINUTES, step=0.5, key=f"{key}_ft_minutes")
        if st.button(f"Fine-tune {model.name} on {chosen}", key=f"{key}_ft_button"):
            result = train_with_bar(f"Fine-tuning {model.name}...", "The encoder could not be fine-tuned",
                                    lambda progress: fine_tune_classifier(cells, chosen, model.name,
                                                                          minutes=float(minutes),
                                                                          data_name=data_name, progress=progress))
            if result is not None:
                test = result.metrics["test"]
                per_state = ", ".join(f"{state} {f1:.2f}" for state, f1 in test["per_state"].items())
                remember(f"{key}_fine_tuned", (data_key, model.name, chosen), result.name,
                         f"{model.name} fine-tuned on {chosen} and saved as {result.name} "
                         f"({shown_path(result.directory)}): held-out macro-F1 {test['macro_f1']:.3f} on "
                         f"{test['cells']:,} cells (per state: {per_state}); {result.record['steps']:,} steps. It is "
                         "in the encoder list now.")
        show_remembered(f"{key}_fine_tuned", (data_key, model.name, chosen), "Fine-tuned")
    return fine_tuned_model(key, data_key, model, chosen)
