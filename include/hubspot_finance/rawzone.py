"""The raw zone: HubSpot data as Parquet chunks plus a manifest per dataset.

Layout under a root :class:`airflow.sdk.ObjectStoragePath` (``file:///…`` or ``s3://conn@bucket/prefix``)::

    {root}/{object_type}/run={run}/part-00000.parquet                      records
    {root}/associations/{from}_to_{to}/run={run}/part-00000.parquet        associations
    {root}/associations/{from}_to_{to}/run={run}/from_ids-00000.parquet    from-ids whose associations were read
    {root}/reference/run={run}/{name}.json                                 properties_*, pipelines_deals, account
    {root}/staged/{object_type}/run={run}/part-00000.parquet               typed rows, one per id (transform task)
    .../_manifest.json                                                     written LAST in each dataset directory

``{run}`` is :func:`sanitize_run_id` of the Airflow run id (``:``, ``+`` … are escaped reversibly).

Completeness: a dataset is complete only when its ``_manifest.json`` exists, and only the part files the
manifest lists are read (their row counts are checked). A writer that starts deletes a stale manifest of
the same dataset first, so a crashed retry never leaves a manifest that points at half-rewritten parts.
Part files are written straight to their final names (no rename: a rename is a copy on object stores);
leftovers of a crashed attempt are simply not listed. Reference JSON files are written whole (locally under
a temporary name and renamed; on an object store a PUT is atomic already, so straight to the final key),
then the directory manifest is rebuilt from the listing, so each ``{name}.json`` that exists is whole.

Object stores (``s3://conn@bucket/prefix`` through the connection's filesystem, e.g. the amazon provider's
s3fs with the connection's ``endpoint_url``): there are no directories, so none are created (``mkdir`` on
S3 would even create a missing bucket); every object is one PUT, so a failed write leaves no object. Any
failure to write (a local ``OSError``, or the store refusing or dropping the connection) is raised as
:class:`RawZoneError` naming the file and the zone's URL (connection id, never credentials), and leaves
the dataset without a manifest.

Association rows are deduplicated per (from_id, to_id) by the writer within each chunk (type ids and
labels unioned, ``is_primary`` OR-ed); the loader merges the rare duplicates that span chunks the same
way, set-based.

Test hook: env ``HUBSPOT_FINANCE_TEST_BLOCK_AT`` = ``phase[:match]=marker_path`` makes the process create
``marker_path`` and wait (until the file is deleted) when it reaches ``phase`` in a dataset whose path
contains ``match``: ``write_part`` (after a part file is written), ``commit`` (before a manifest is
written), ``read_part`` (after a part file is read, i.e. mid-transform inside the load). Tests kill the
process there (``kill -9``) or release it by deleting the marker.

Strings that cannot be stored as UTF-8 (lone surrogates such as ``\ud800`` from a JSON escape) are
kept with U+FFFD in their place, with a warning; the rest of the value is kept.

Record schema: ``id`` string, ``created_at``/``updated_at``/``archived_at`` timestamp[ms, UTC], ``archived``
bool, then ``p:<property>`` strings exactly as HubSpot sent them. Unparseable HubSpot timestamps are stored
as null (the transform rejects a record without ``updated_at``).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
DEFAULT_CHUNK_ROWS = 50_000
PROPERTY_PREFIX = "p:"
TS = pa.timestamp("ms", tz="UTC")

RECORD_BASE_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("created_at", TS),
    pa.field("updated_at", TS),
    pa.field("archived", pa.bool_()),
    pa.field("archived_at", TS),
]
ASSOCIATION_SCHEMA = pa.schema(
    [
        pa.field("from_id", pa.string()),
        pa.field("to_id", pa.string()),
        pa.field("type_ids", pa.list_(pa.int32())),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("is_primary", pa.bool_()),
    ]
)
FROM_IDS_SCHEMA = pa.schema([pa.field("from_id", pa.string())])
# HUBSPOT_DEFINED association type ids that mean "primary" (deal→company 5, company→deal 6, contact→company 1).
PRIMARY_TYPE_IDS = frozenset({1, 5, 6})

_SAFE = re.compile(r"[A-Za-z0-9._-]")
BLOCK_AT_ENV = "HUBSPOT_FINANCE_TEST_BLOCK_AT"
_SURROGATES = re.compile("[\ud800-\udfff]")


def _test_block(phase: str, where: str) -> None:
    """Test hook (see the module docstring): block at ``phase`` until the marker file is deleted."""
    spec = os.environ.get(BLOCK_AT_ENV)
    if not spec or "=" not in spec:
        return
    point, marker = spec.split("=", 1)
    name, _, match = point.partition(":")
    if name != phase or (match and match not in where) or os.path.exists(marker + ".done"):
        return
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    open(marker + ".done", "w").close()  # block once per process tree: a released writer goes on
    while os.path.exists(marker):  # pragma: no cover - killed or released by the test
        time.sleep(0.05)


def _is_local(path: Any) -> bool:
    """True for a local filesystem (real directories, atomic rename); False for object stores."""
    return getattr(path, "protocol", "file") in ("file", "local", "")


def _clean_text(value: str) -> tuple[str, bool]:
    """``value`` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD; True if any were."""
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value), True


class RawZoneError(RuntimeError):
    """Raised for incomplete or inconsistent raw-zone datasets."""


class IncompleteDatasetError(RawZoneError):
    """The dataset has no manifest (still being written, or its writer crashed)."""


class StagedDatasetMissingError(IncompleteDatasetError):
    """The run's transform task has not committed its staged dataset (not run, failed or interrupted)."""


def sanitize_run_id(run_id: str) -> str:
    """Make an Airflow run id safe as a path segment; reversible (``~XX`` hex escapes)."""
    if not run_id:
        raise ValueError("run_id must not be empty")
    return "".join(ch if _SAFE.match(ch) else "".join(f"~{b:02X}" for b in ch.encode()) for ch in run_id)


def record_schema(property_names: Iterable[str]) -> pa.Schema:
    return pa.schema(RECORD_BASE_FIELDS + [pa.field(PROPERTY_PREFIX + p, pa.string()) for p in property_names])


def parse_hubspot_time(value: Any) -> datetime | None:
    """ISO-8601 (``Z`` or offset; naive means UTC) or epoch milliseconds → aware UTC datetime; None if unreadable."""
    from hubspot_finance.validation import parse_datetime

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return parse_datetime(None if value is None else str(value))
    except (ValueError, OverflowError):
        return None


@dataclass
class Manifest:
    """What a committed dataset holds. Small: paths and counts, never data."""

    kind: str  # records | associations | reference
    dataset: str  # path of the dataset directory relative to the zone root
    run_id: str
    name: str  # object type, "{from}_to_{to}", or "reference"
    parts: list[dict[str, Any]] = field(default_factory=list)  # [{"file", "rows"}]
    from_id_parts: list[dict[str, Any]] = field(default_factory=list)
    property_names: list[str] = field(default_factory=list)
    rows: int = 0
    from_ids: int = 0
    files: list[str] = field(default_factory=list)  # reference: names available
    committed_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RawZone:
    """Reader and writer of the raw zone under ``root`` (an ObjectStoragePath or anything path-like)."""

    def __init__(self, root: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        if isinstance(root, str):
            from airflow.sdk import ObjectStoragePath

            root = ObjectStoragePath(root)
        self.root = root
        self.chunk_rows = chunk_rows

    # ---------------------------------------------------------------- paths
    def _dir(self, rel: str) -> Any:
        p = self.root
        for seg in rel.split("/"):
            p = p / seg
        return p

    @staticmethod
    def records_rel(object_type: str, run_id: str) -> str:
        return f"{object_type}/run={sanitize_run_id(run_id)}"

    @staticmethod
    def associations_rel(from_type: str, to_type: str, run_id: str) -> str:
        return f"associations/{from_type}_to_{to_type}/run={sanitize_run_id(run_id)}"

    @staticmethod
    def staged_rel(object_type: str, run_id: str) -> str:
        return f"staged/{object_type}/run={sanitize_run_id(run_id)}"

    @staticmethod
    def reference_rel(run_id: str) -> str:
        return f"reference/run={sanitize_run_id(run_id)}"

    # ---------------------------------------------------------------- writers
    def record_writer(self, object_type: str, run_id: str, property_names: Iterable[str]) -> RecordWriter:
        return RecordWriter(self, object_type, run_id, list(property_names), self.chunk_rows)

    def association_writer(self, from_type: str, to_type: str, run_id: str) -> AssociationWriter:
        return AssociationWriter(self, from_type, to_type, run_id, self.chunk_rows)

    def write_reference(self, run_id: str, name: str, obj: Any) -> Manifest:
        """Write ``{root}/reference/run={run}/{name}.json`` and (re)write the directory manifest."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("_"):
            raise ValueError(f"invalid reference name {name!r}")
        rel = self.reference_rel(run_id)
        d = self._dir(rel)
        data = json.dumps(obj).encode()  # ASCII escapes: lone surrogates survive the round trip
        try:
            if _is_local(d):
                d.mkdir(parents=True, exist_ok=True)
                tmp = d / f".{name}.json.{uuid.uuid4().hex}.tmp"
                with tmp.open("wb") as fh:
                    fh.write(data)
                tmp.rename(d / f"{name}.json")
            else:  # one PUT: the object appears whole or not at all (a rename would be copy + delete)
                with (d / f"{name}.json").open("wb") as fh:
                    fh.write(data)
            files = sorted(
                p.name[: -len(".json")] for p in d.iterdir() if p.name.endswith(".json") and not p.name.startswith(("_", "."))
            )
            manifest = Manifest("reference", rel, run_id, "reference", files=files, committed_at=_now_iso())
            _write_json(d / MANIFEST, manifest.to_dict())
        except Exception as err:
            raise _write_error(self.root, rel, f"{name}.json", err, "The run's reference data is incomplete") from err
        return manifest

    # ---------------------------------------------------------------- readers
    def read_manifest(self, rel: str) -> Manifest:
        path = self._dir(rel) / MANIFEST
        if not path.exists():
            raise IncompleteDatasetError(
                f"raw-zone dataset {rel!r} under {self.root} has no {MANIFEST}: it is incomplete "
                "(still being written or its writer crashed) and must not be read"
            )
        with path.open("rb") as fh:
            return Manifest.from_dict(json.loads(fh.read()))

    def records_manifest(self, object_type: str, run_id: str) -> Manifest:
        return self.read_manifest(self.records_rel(object_type, run_id))

    def staged_manifest(self, object_type: str, run_id: str) -> Manifest:
        """The transform task's committed output; a missing one names the task to run."""
        try:
            return self.read_manifest(self.staged_rel(object_type, run_id))
        except IncompleteDatasetError:
            raise StagedDatasetMissingError(
                f"run {run_id!r} has no staged {object_type} under {self.root}: task transform_{object_type} has not "
                f"finished for this run. Run (or clear) transform_{object_type} first, then load."
            ) from None

    def associations_manifest(self, from_type: str, to_type: str, run_id: str) -> Manifest:
        return self.read_manifest(self.associations_rel(from_type, to_type, run_id))

    def reference_manifest(self, run_id: str) -> Manifest:
        return self.read_manifest(self.reference_rel(run_id))

    def read_reference(self, run_id: str, name: str, default: Any = ...) -> Any:
        manifest = self.reference_manifest(run_id)
        path = self._dir(manifest.dataset) / f"{name}.json"
        if name not in manifest.files and not path.exists():
            if default is not ...:
                return default
            raise IncompleteDatasetError(f"reference {name!r} of run {run_id!r} was not written")
        with path.open("rb") as fh:
            return json.loads(fh.read())

    def _iter_parts(self, manifest: Manifest, parts: list[dict[str, Any]], columns: list[str] | None) -> Iterator[pa.Table]:
        d = self._dir(manifest.dataset)
        for part in parts:
            path = d / part["file"]
            if not path.exists():
                raise RawZoneError(f"{manifest.dataset}/{part['file']} is listed in the manifest but missing")
            with path.open("rb") as fh:
                table = pq.read_table(io.BytesIO(fh.read()), columns=columns)
            _test_block("read_part", f"{manifest.dataset}/{part['file']}")
            if table.num_rows != part["rows"]:
                raise RawZoneError(
                    f"{manifest.dataset}/{part['file']}: {table.num_rows} rows, manifest says {part['rows']}"
                )
            yield table

    def iter_tables(self, manifest: Manifest, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The dataset's rows, one pyarrow table per part file (memory bounded by the chunk size)."""
        return self._iter_parts(manifest, manifest.parts, columns)

    def iter_frames(self, manifest: Manifest, columns: list[str] | None = None) -> Iterator[Any]:
        for table in self.iter_tables(manifest, columns):
            yield table.to_pandas()

    def read_dataset_json(self, manifest: Manifest, name: str, default: Any = None) -> Any:
        """A JSON side file of a committed dataset (e.g. ``purged.json``); ``default`` if it has none."""
        if name not in manifest.extra.get("side_files", []):
            return default
        with (self._dir(manifest.dataset) / name).open("rb") as fh:
            return json.loads(fh.read())

    def iter_from_ids(self, manifest: Manifest) -> Iterator[pa.Table]:
        """Association datasets: the from-ids whose associations were read (covered) in the run."""
        return self._iter_parts(manifest, manifest.from_id_parts, None)


def _write_json(path: Any, obj: Any) -> None:
    with path.open("wb") as fh:
        fh.write(json.dumps(obj, indent=1, default=str).encode())


def _write_parquet(path: Any, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    with path.open("wb") as fh:
        fh.write(buf.getvalue())


def _write_error(
    root: Any, rel: str, fname: str, err: Exception,
    outcome: str = "The dataset has no manifest, so nothing of it will be loaded",
) -> RawZoneError:
    """The error for a raw-zone file that could not be written: the file, the zone's URL and the cause."""
    if _is_local(root) and isinstance(err, OSError):
        hint = " (the raw zone's storage is full: free space or move HUBSPOT_SYNC_RAW_ROOT)" if err.errno == errno.ENOSPC else ""
        cause = f"{err.strerror or err}{hint}"
    else:  # e.g. botocore's EndpointConnectionError: the object store refused or dropped the connection
        store = "object store" if not _is_local(root) else "raw zone's storage"
        cause = f"the {store} could not be written ({type(err).__name__}: {' '.join(str(err).split())})"
    return RawZoneError(
        f"writing raw-zone file {rel}/{fname} under {root} failed: {cause}. "
        f"{outcome}; re-run the task once the cause is fixed."
    )


class _DatasetWriter:
    kind = ""

    def __init__(self, zone: RawZone, rel: str, run_id: str, name: str, chunk_rows: int):
        self.zone, self.rel, self.run_id, self.name = zone, rel, run_id, name
        self.chunk_rows = max(1, chunk_rows)
        self.dir = zone._dir(rel)
        stale = self.dir / MANIFEST
        try:
            if _is_local(self.dir):  # object stores have no directories to create
                self.dir.mkdir(parents=True, exist_ok=True)
            if stale.exists():  # a retry of the same run: invalidate the old dataset before touching parts
                stale.unlink()
        except Exception as err:
            outcome = "Nothing of this attempt was written (an earlier attempt's manifest, if any, is as it was)"
            raise _write_error(zone.root, rel, MANIFEST, err, outcome) from err
        self.parts: list[dict[str, Any]] = []
        self.side_files: list[str] = []
        self.committed = False

    def write_json(self, name: str, obj: Any) -> None:
        """A small JSON side file of the dataset (listed in the manifest's ``side_files``), before commit."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.json", name) or name == MANIFEST:
            raise ValueError(f"invalid side file name {name!r}")
        try:
            _write_json(self.dir / name, obj)
        except Exception as err:
            raise self._write_error(name, err) from err
        self.side_files.append(name)

    def _write_part(self, prefix: str, seq: int, table: pa.Table, parts: list[dict[str, Any]]) -> None:
        fname = f"{prefix}-{seq:05d}.parquet"
        try:
            _write_parquet(self.dir / fname, table)
        except Exception as err:
            raise self._write_error(fname, err) from err
        parts.append({"file": fname, "rows": table.num_rows})
        _test_block("write_part", f"{self.rel}/{fname}")

    def _write_error(self, fname: str, err: Exception) -> RawZoneError:
        return _write_error(self.zone.root, self.rel, fname, err)

    def _commit(self, manifest: Manifest) -> Manifest:
        if self.committed:
            raise RawZoneError(f"{self.rel}: already committed")
        _test_block("commit", self.rel)
        manifest.committed_at = _now_iso()
        try:
            _write_json(self.dir / MANIFEST, manifest.to_dict())
        except Exception as err:
            try:  # a half-written manifest must not make the dataset look complete
                (self.dir / MANIFEST).unlink()
            except Exception:
                pass
            raise self._write_error(MANIFEST, err) from err
        self.committed = True
        return manifest


class RecordWriter(_DatasetWriter):
    """Buffers HubSpot record dicts and writes one Parquet part per ``chunk_rows`` rows."""

    def __init__(self, zone: RawZone, object_type: str, run_id: str, property_names: list[str], chunk_rows: int):
        super().__init__(zone, RawZone.records_rel(object_type, run_id), run_id, object_type, chunk_rows)
        if len(set(property_names)) != len(property_names):
            raise ValueError("property_names contains duplicates")
        self.property_names = property_names
        self.schema = record_schema(property_names)
        self._buf: list[dict[str, Any]] = []
        self.rows = 0
        self._warned_extra = False

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            self._buf.append(rec)
            if len(self._buf) >= self.chunk_rows:
                self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        buf, self._buf = self._buf, []
        cols: dict[str, list[Any]] = {"id": [], "created_at": [], "updated_at": [], "archived": [], "archived_at": []}
        pcols: list[list[Any]] = [[] for _ in self.property_names]
        known = set(self.property_names)
        cleaned: set[str] = set()

        def text(value: Any, what: str) -> str | None:
            if value is None:
                return None
            value = value if isinstance(value, str) else _to_text(value)
            value, changed = _clean_text(value)
            if changed:
                cleaned.add(what)
            return value

        for rec in buf:
            rid = rec.get("id")
            cols["id"].append(text(rid, "id"))
            cols["created_at"].append(parse_hubspot_time(rec.get("createdAt")))
            cols["updated_at"].append(parse_hubspot_time(rec.get("updatedAt")))
            cols["archived"].append(bool(rec.get("archived", False)))
            cols["archived_at"].append(parse_hubspot_time(rec.get("archivedAt")))
            props = rec.get("properties") or {}
            for i, name in enumerate(self.property_names):
                pcols[i].append(text(props.get(name), name))
            if not self._warned_extra and not known.issuperset(props):
                self._warned_extra = True
                log.warning(
                    "%s: records carry properties outside the run's property list (not stored): %s",
                    self.rel, sorted(set(props) - known)[:10],
                )
        if cleaned:
            log.warning(
                "%s: values of %s held characters that are not valid Unicode (lone surrogates); "
                "they are stored with U+FFFD in their place", self.rel, sorted(cleaned)[:10],
            )
        arrays = [pa.array(cols[f.name], type=f.type) for f in RECORD_BASE_FIELDS]
        arrays += [pa.array(c, type=pa.string()) for c in pcols]
        self._write_part("part", len(self.parts), pa.Table.from_arrays(arrays, schema=self.schema), self.parts)
        self.rows += len(buf)

    def commit(self, extra_manifest: dict[str, Any] | None = None) -> Manifest:
        self.flush()
        if self.side_files:
            extra_manifest = {**(extra_manifest or {}), "side_files": list(self.side_files)}
        return self._commit(
            Manifest(
                "records", self.rel, self.run_id, self.name, parts=self.parts, property_names=self.property_names,
                rows=self.rows, extra=dict(extra_manifest or {}),
            )
        )


def _to_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class AssociationWriter(_DatasetWriter):
    """Takes HubSpot association batch results (``{"from": {"id"}, "to": [...]}``) and from-id coverage.

    Every ``from.id`` seen in results counts as covered; call :meth:`add_covered` for ids that were
    requested but came back without associations (omitted or as errors): their stored set is emptied.
    """

    def __init__(self, zone: RawZone, from_type: str, to_type: str, run_id: str, chunk_rows: int):
        super().__init__(zone, RawZone.associations_rel(from_type, to_type, run_id), run_id, f"{from_type}_to_{to_type}", chunk_rows)
        self._pairs: dict[tuple[str, str], list[Any]] = {}  # (from, to) -> [type_ids set, labels set, primary]
        self._cov: set[str] = set()
        self.from_id_parts: list[dict[str, Any]] = []
        self.rows = 0
        self.covered = 0

    def write(self, results: Iterable[dict[str, Any]]) -> None:
        for res in results:
            from_id = str((res.get("from") or {}).get("id", res.get("fromId", "")) or "")
            if not from_id:
                continue
            self._add_cov(from_id)
            for to in res.get("to") or []:
                to_id = to.get("toObjectId", to.get("id"))
                if to_id is None:
                    continue
                entry = self._pairs.setdefault((from_id, str(to_id)), [set(), set(), False])
                for at in to.get("associationTypes") or []:
                    tid = at.get("typeId")
                    if tid is not None:
                        entry[0].add(int(tid))
                        entry[2] = entry[2] or int(tid) in PRIMARY_TYPE_IDS
                    label = at.get("label")
                    if label:
                        entry[1].add(str(label))
                        entry[2] = entry[2] or str(label).lower() == "primary"
            if len(self._pairs) >= self.chunk_rows:
                self._flush_pairs()

    def add_covered(self, from_ids: Iterable[Any]) -> None:
        for fid in from_ids:
            if fid is not None and str(fid):
                self._add_cov(str(fid))

    def _add_cov(self, fid: str) -> None:
        self._cov.add(fid)
        if len(self._cov) >= self.chunk_rows:
            self._flush_cov()

    def _flush_pairs(self) -> None:
        if not self._pairs:
            return
        pairs, self._pairs = self._pairs, {}
        keys = list(pairs)
        table = pa.Table.from_arrays(
            [
                pa.array([k[0] for k in keys], pa.string()),
                pa.array([k[1] for k in keys], pa.string()),
                pa.array([sorted(pairs[k][0]) for k in keys], pa.list_(pa.int32())),
                pa.array([sorted(pairs[k][1]) for k in keys], pa.list_(pa.string())),
                pa.array([pairs[k][2] for k in keys], pa.bool_()),
            ],
            schema=ASSOCIATION_SCHEMA,
        )
        self._write_part("part", len(self.parts), table, self.parts)
        self.rows += len(keys)

    def _flush_cov(self) -> None:
        if not self._cov:
            return
        cov, self._cov = sorted(self._cov), set()
        self._write_part("from_ids", len(self.from_id_parts), pa.Table.from_arrays([pa.array(cov, pa.string())], schema=FROM_IDS_SCHEMA), self.from_id_parts)
        self.covered += len(cov)

    def commit(self, extra_manifest: dict[str, Any] | None = None) -> Manifest:
        self._flush_pairs()
        self._flush_cov()
        return self._commit(
            Manifest(
                "associations", self.rel, self.run_id, self.name, parts=self.parts, from_id_parts=self.from_id_parts,
                rows=self.rows, from_ids=self.covered, extra=dict(extra_manifest or {}),
            )
        )
