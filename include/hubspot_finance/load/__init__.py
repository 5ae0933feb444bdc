"""Bulk, idempotent, atomic load of one run's raw-zone datasets into the finance tables.

Entry point: :func:`load_run` ``(db, plan) -> RunSummary``; the plan's rows are the transform task's
staged datasets (:mod:`hubspot_finance.transform_step`). The modules, one concern each:
:mod:`.plan` (what to load), :mod:`.run` (the transaction and the order of steps), :mod:`.staging`
(bulk-write the transform task's staged Parquet into the table or a staging table), :mod:`.entities` (the set-based SQL of the entity
tables: upsert, contract changes, merges, permanent deletes, rejects, watermarks), :mod:`.links`
(link sets, their versions, primary companies), and one module per dialect (:mod:`.postgres`,
:mod:`.sqlite`) — the only place where the two differ.
"""

from hubspot_finance.load.plan import LoadConfig, LoadPlan
from hubspot_finance.load.run import BLOCK_ENV, load_run

__all__ = ["BLOCK_ENV", "LoadConfig", "LoadPlan", "load_run"]
