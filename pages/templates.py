"""Templates."""

import streamlit as st

st.title("Templates")
st.info(
    "This page is not built yet. It arrives with issue 4 (Templates: the rich editor, personalisation variables, preview and the AI assistant)."
)
