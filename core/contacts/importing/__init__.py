"""Importing contacts from CSV and Excel files, fast and with every rejected row reported.

The file is streamed in chunks, one transaction per chunk. This process cuts the file into
records; worker processes (one per core, for big files) parse and check each chunk; this
process drops in-file duplicates and a writer thread puts the chunk into `contact`: on
PostgreSQL new contacts are copied straight in, otherwise the chunk is staged into a
temporary table and merged with a few set-based statements. Memory stays bounded by a few
chunks plus one set of the addresses seen so far (for in-file duplicates).

`read` opens files, `mapping` guesses where columns go and previews, `check` checks rows,
`stage` puts a checked chunk into the table,
`write` runs an import, `jobs` runs one in the background. This module is the interface
pages, the CLI and the worker use.
"""

from core.contacts.importing.check import check_email
from core.contacts.importing.jobs import (
    IMPORT_TASK,
    JOB_KIND,
    MAX_REQUEUES,
    import_jobs,
    recover_import_jobs,
    run_import_job,
    save_upload,
    start_import_job,
    upload_dir,
)
from core.contacts.importing.mapping import (
    STANDARD_TARGETS,
    TARGET_LABELS,
    Preview,
    ZoneGuessOffer,
    guess_mapping,
    guess_target,
    inspect_file,
    zone_guess_offer,
)
from core.contacts.importing.read import (
    MAX_COLUMNS,
    UnreadableFile,
    excel_sheets,
    open_table,
)
from core.contacts.importing.write import (
    MAX_WORKERS,
    PARALLEL_MIN_ROWS,
    ImportOptions,
    ImportResult,
    import_contacts,
)

__all__ = [
    "IMPORT_TASK",
    "JOB_KIND",
    "MAX_COLUMNS",
    "MAX_REQUEUES",
    "MAX_WORKERS",
    "PARALLEL_MIN_ROWS",
    "STANDARD_TARGETS",
    "TARGET_LABELS",
    "ImportOptions",
    "ImportResult",
    "Preview",
    "UnreadableFile",
    "ZoneGuessOffer",
    "check_email",
    "excel_sheets",
    "guess_mapping",
    "guess_target",
    "import_contacts",
    "import_jobs",
    "inspect_file",
    "open_table",
    "zone_guess_offer",
    "recover_import_jobs",
    "run_import_job",
    "save_upload",
    "start_import_job",
    "upload_dir",
]
