"""Reports."""

import streamlit as st

st.title("Reports")
st.info(
    "This page is not built yet. It arrives with issue 7 (Reports: campaign figures and charts)."
)
