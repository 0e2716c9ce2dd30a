"""`python -m ui.server run app.py ...`: Streamlit's own CLI, with the v1 pages/ mode off.

Streamlit decides once per process, when the first session starts, whether a `pages/`
folder beside the main script means its old multipage mode, in which a page's file runs
directly and the main script never runs. app.py turns that off, but only once app.py
itself has run: the first visitor after a start whose link named a page (`/reports`)
got `pages/reports.py` without app.py's sign-in gate and navigation (a blank page, as
the page stops without a signed-in actor), and so did everyone after them until somebody
opened `/`. Turning it off before the server starts leaves no such window.
"""

from __future__ import annotations

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

from core.infra.logs import configure_logging


def main() -> None:
    PagesManager.uses_pages_directory = False
    configure_logging()  # core's lines: LOG_FORMAT, LOG_LEVEL (Streamlit keeps its own)
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
