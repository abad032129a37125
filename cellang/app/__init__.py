"""Streamlit parts that several pages share (the app is a client of cellang; no science lives here)."""
