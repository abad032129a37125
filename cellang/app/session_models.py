"""Models a cell page trains in this session (adapted to the cells, fine-tuned on their states): trained under a
progress bar, remembered in the session with a note, and shown again on every rerun of the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from cellang.progress import Progress


def train_with_bar(start_text: str, failure: str, train: Callable[[Progress], Any]) -> Any | None:
    """``train(progress)`` under a progress bar; a ValueError or OSError is shown as "failure: error" and gives None."""
    bar = st.progress(0.0, text=start_text)
    try:
        return train(lambda fraction, text: bar.progress(fraction, text=text))
    except (ValueError, OSError) as error:
        bar.empty()
        st.error(f"{failure}: {error}")
        return None


def remember(store: str, entry: tuple, name: str, note: str) -> None:
    """Remember that ``entry`` (the cells, the base model, ...) made the model ``name``, with what to say about it, then
    rerun the page: its encoder lists are read at the top and now include the new model."""
    done = dict(st.session_state.get(store, {}))
    done[entry] = name
    st.session_state[store] = done
    st.session_state[f"{store}_note"] = note
    st.rerun()


def remembered(store: str, entry: tuple) -> str | None:
    """The model ``entry`` made in this session, if any."""
    return st.session_state.get(store, {}).get(entry)


def show_remembered(store: str, entry: tuple, made: str) -> str | None:
    """Say what ``entry`` made in this session (its note, else "<made> in this session: <name>."); returns the name."""
    name = remembered(store, entry)
    if name is not None:
        st.success(st.session_state.get(f"{store}_note", f"{made} in this session: {name}."))
    return name
