"""Streamlit parts that several pages share (the app is a client of cellang_core; no science lives here)."""
