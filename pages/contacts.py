"""Contacts."""

import streamlit as st

st.title("Contacts")
st.info(
    "This page is not built yet. It arrives with issue 3 (Contacts: the address book with custom fields, lists, import and export)."
)
