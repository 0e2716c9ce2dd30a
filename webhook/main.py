"""`uvicorn webhook.main:app`: a separate process from the Streamlit app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from core.db import get_engine

app = FastAPI(title="Mailwright webhook", docs_url=None, redoc_url=None)


@app.get("/healthz")
def healthz() -> JSONResponse:
    """200 when the process is up and its database answers."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})
