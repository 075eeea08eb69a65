"""The data-team export's storage: immutable parts in a Hive layout, and their manifest.

``PartsSink`` (``_sink``) implements the export engine's sink protocol over a
``Store`` (``_store``: a directory, or an object store through obstore in
``_objstore``), writing part files (``_encode``: Parquet, JSON Lines, CSV, with
gzip or zstd) named by ``_layout`` and listed in a manifest (``_manifest``).
Optional extras: ``parquet`` (pyarrow), ``storage`` (obstore: S3, GCS, Azure),
``zstd`` (zstandard); a local directory needs none of them.
"""

from .._errors import ExportError, ExportInputError, MissingExtraError, SecondWriterError
from ._encode import COMPRESSIONS, FORMATS, PartFormat, part_format
from ._manifest import Manifest, PartEntry
from ._sink import DEFAULT_PART_BYTES, DEFAULT_PART_RECORDS, PartsSink
from ._store import LocalStore, Store, open_store

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_PART_BYTES",
    "DEFAULT_PART_RECORDS",
    "FORMATS",
    "ExportError",
    "ExportInputError",
    "LocalStore",
    "Manifest",
    "MissingExtraError",
    "PartEntry",
    "PartFormat",
    "PartsSink",
    "SecondWriterError",
    "Store",
    "open_store",
    "part_format",
]
