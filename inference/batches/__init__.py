"""Batch jobs: a CSV or Parquet file scored in chunks by Celery workers.

Modules: ``jobs`` (submit, read, cancel, resume stale jobs, purge the files), ``runner``
(claim a job, run its time-sized chunks, finish it, summarise failures), ``logwrite``
(a chunk's rows into the prediction log: COPY on PostgreSQL, bulk_create elsewhere, the
model's chain head locked first) and ``files`` (reading the input, writing the result
and error files with the pass-through columns, the stored files) and ``explaining``
("explain all rows": the explain app's SHAP of each chunk's scored rows, stored per chunk
and joined into the result file as ``shap_*`` columns).

The request that uploads the file checks it (format, encoding, ragged rows,
the header against the version's schema, the broker), stores it and writes a
``BatchJob`` row; the worker task takes only the job's id. Every valid row is
logged as a ``Prediction`` with ``batch`` and ``row_index`` (its 0-based
position among the file's data rows, blank lines not counted) and routed like a
single prediction (the same ``score_and_build``); rows that fail validation go
to the error file instead, and are counted by reason like refused requests.

Chunks
    Chunks are consecutive runs of rows, committed in order: chunk k starts where
    chunk k-1 ended, so the job's ``rows_done`` is where the next chunk starts.
    A job with ``chunk_seconds`` (the default, ATTEST_BATCH_CHUNK_SECONDS) sizes each
    chunk from the rate of the ones before it (``ChunkSizer``): about that many
    seconds of work, so progress moves as often on a slow model or machine as on a
    fast one, and transactions are as large as that allows. Its first chunk is
    ``chunk_size`` rows; a job submitted with an explicit ``chunk_size`` keeps it.

Crash safety
    A chunk's log rows, review items, error-file part and the job's progress
    (``chunks_done``, counters) are written in ONE transaction that first locks the
    job row, skips the chunk if it is already marked done, and refuses it unless it
    starts at ``rows_done``. So a worker killed at any point leaves either the whole
    chunk or none of it, and a later run resumes at ``rows_done`` whatever size its
    chunks take; the unique (batch, row_index) constraint is the backstop, checked
    before inserting (check-then-insert) so review items stay paired with their rows.
    Result and error files are derived from the database and the stored parts at the
    end, byte-for-byte the same on a re-run, and stored under their sha256.

Pass-through columns
    Columns named at upload (``passthrough_columns``, an identifier to join results
    back by) are never read into a record, so they are not validated, scored, hashed or
    logged, and no chunk's error part holds them. The result and error files get them
    as leading columns at the end, read afresh from the stored input by row_index
    (``files.passthrough_rows``), so a resumed job's files are right whatever
    chunks it ran in. Their values then live only in the stored input, result and error
    files, which ``batch_inputs_purge`` deletes together under the model's retention.

    Redelivery: tasks are acknowledged late, so a message whose worker died
    stays with the broker. On PostgreSQL a worker holds a session advisory lock
    on the job while it works; the database drops it the moment the worker's
    connection dies. A second delivery while the lock is held retries later
    (no two workers score one job at once), and ``batch_resume_stale`` (Celery
    beat) re-enqueues jobs that made no progress for a while and whose lock
    nobody holds: that resumes a job after ``kill -9`` within a minute or two,
    without waiting for the broker's visibility timeout (an hour).
"""

from .files import ERROR_HEADER, RESULT_HEADER
from .jobs import (
    Enqueue,
    batch_cancel,
    batch_file_get,
    batch_get_for_user,
    batch_inputs_purge,
    batch_list_for_user,
    batch_progress,
    batch_queue_for,
    batch_resume_stale,
    batch_submit,
)
from .runner import (
    ACTIVE,
    BUSY,
    FINISHED,
    MAX_CHUNK_ROWS,
    MIN_CHUNK_ROWS,
    ChunkOutOfStep,
    ChunkSizer,
    PreparedChunk,
    batch_chunk_commit,
    batch_chunk_prepare,
    batch_chunk_process,
    batch_chunks_run,
    batch_failure_reasons,
    batch_run,
)

__all__ = [
    "ACTIVE", "BUSY", "ERROR_HEADER", "Enqueue", "FINISHED", "MAX_CHUNK_ROWS", "MIN_CHUNK_ROWS",
    "RESULT_HEADER", "ChunkOutOfStep", "ChunkSizer", "PreparedChunk", "batch_cancel",
    "batch_chunk_commit", "batch_chunk_prepare", "batch_chunk_process", "batch_chunks_run",
    "batch_failure_reasons", "batch_file_get", "batch_get_for_user", "batch_inputs_purge",
    "batch_list_for_user", "batch_progress", "batch_queue_for",
    "batch_resume_stale", "batch_run", "batch_submit",
]
