"""Segments."""

import streamlit as st

st.title("Segments")
st.info(
    "This page is not built yet. It arrives with issue 8 (Segments: a visual rule builder with live counts)."
)
