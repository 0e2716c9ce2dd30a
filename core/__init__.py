"""Mailwright's domain layer: settings, database, models and services.

Nothing in this package imports Streamlit, FastAPI or the worker.
"""
