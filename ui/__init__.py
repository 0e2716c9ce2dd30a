"""Streamlit glue shared by app.py and pages/: sessions, sign-in and small widgets."""
