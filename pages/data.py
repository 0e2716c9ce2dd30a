"""Data."""

import streamlit as st

st.title("Data")
st.info(
    "This page is not built yet. It arrives with issue 7 (Data: read-only SQL over the DuckDB rollups)."
)
