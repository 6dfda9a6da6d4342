"""Dataset profiling: a summary of a tabular file that is safe to share instead of its rows.

Why this package exists: a researcher registers the dataset a model was trained or
validated on without uploading patient rows. ``attest profile`` runs this code on their
own machine and sends only the result (hash, shape, per-column statistics) to the
server; the server runs the very same code on files it already holds and uses
``validate_profile`` on profiles it receives as JSON. It therefore must not import
Django (an import-linter contract checks it), and it must behave identically in both places.

Formats
    ``csv`` (``.csv``) or ``parquet`` (``.parquet``, ``.pq``), chosen by ``file_format``
    or else by the file's suffix. CSV is comma-separated, double-quoted, strictly UTF-8
    (a leading byte-order mark is tolerated), first line is the header. Blank lines are
    skipped. A row with more *or fewer* fields than the header is an error, never padded
    or shifted. Missing values are empty fields and pandas' default NA markers
    (``NA``, ``N/A``, ``NaN``, ``null``, ...); in parquet, nulls and float NaN.

Column types (deliberately simple and predictable, decided per column)
    * ``boolean``: a bool column (pandas/arrow bool), or a column whose values are all
      the strings ``true``/``false`` in any letter case (at least one value present).
    * ``integer``: an integer column; or a float column that has at least one missing
      value and whose present values are all whole numbers (an integer column with gaps
      is read back as float, this undoes that). ``1.0, 2.0`` with no gaps stays
      ``number``.
    * ``number``: any other float column (including a column with no values at all).
    * ``category``: everything else (text, dates, decimals, nested values), profiled on
      the values' string form. ``yes``/``no`` or ``0``/``1`` are *not* booleans.

Profile of one column
    every type: ``type``, ``count`` (present values), ``missing_rate`` (0..1).
    numeric: ``min max mean std p01 p99`` (floats; ``std`` is the sample standard
    deviation, None below two values), ``quantiles`` (edges at q = 0, 1/n_bins, ..., 1,
    deduplicated, ascending) and ``bin_frequencies`` (share of present values per bin,
    sums to 1). Bins follow ``numpy.histogram``: ``[e_i, e_i+1)``, the last one closed.
    A constant column has the single edge ``[c]`` and one bin ``[1.0]``.
    boolean: ``categories`` ``{"true": share, "false": share}``.
    category: ``distinct``, ``categories`` (the ``max_categories`` most frequent values
    among those seen in at least ``min_category_count`` rows (default 5), ties broken by
    value, with their shares) and ``other_rate`` (share of the rest).
    Shares are of the present values; anything undefined (no values) is None.
    Infinite numbers are refused (``non_finite_values``) rather than silently dropped.

Note for reviewers of what leaves the machine: min/max are individual values from the
data. Category values are listed only when at least ``min_category_count`` rows share
them, so an identifier or free-text column lists nothing but its number of distinct
values and ``other_rate``.

Error codes (``ProfilingError.code``)
    ``unsupported_format``, ``file_not_found``, ``file_unreadable``, ``empty_file``,
    ``encoding``, ``ragged_rows``, ``malformed_csv``, ``corrupt_file``, ``no_columns``,
    ``blank_column_name``, ``duplicate_columns``, ``no_rows``, ``non_finite_values``.
"""

from .profile import (
    COLUMN_TYPES,
    FORMATS,
    MIN_CATEGORY_COUNT,
    PROFILE_VERSION,
    DatasetProfile,
    ProfilingError,
    check_file,
    check_header,
    profile_file,
    resolve_file_format,
    scan_csv,
    sha256_file,
)
from .validation import validate_profile

__all__ = [
    "COLUMN_TYPES", "FORMATS", "MIN_CATEGORY_COUNT", "PROFILE_VERSION", "DatasetProfile",
    "ProfilingError", "check_file", "check_header", "profile_file", "resolve_file_format",
    "scan_csv", "sha256_file", "validate_profile",
]
