"""Campaigns."""

import streamlit as st

st.title("Campaigns")
st.info(
    "This page is not built yet. It arrives with issue 5 (Campaigns: the list, the creation wizard and sending)."
)
