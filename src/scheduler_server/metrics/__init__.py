"""Prometheus metrics of this process (a shared leaf: services record into it, ``web`` serves it).

``setup(data_path)`` (first thing in ``create_app``) decides where the series live: in memory for a
lone process, in files shared by the workers of one server otherwise (``directory.py``). The record
functions below are one-liners for the code they measure; each label takes a bounded set of values
(docs/metrics.md). This module imports nothing of ``pipelines``, ``observing`` or ``web``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from scheduler_server.metrics import directory
from scheduler_server.metrics.series import PREFIX, Series

log = logging.getLogger(__name__)

#: Text format 0.0.4, as prometheus-client's generate_latest writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_lock = threading.Lock()
_series: Series | None = None
_path: Path | None = None


def setup(data_path: Path) -> None:
    """Choose the multiprocess directory (or none) before any series exists; forget dead workers' gauges."""
    global _path
    with _lock:
        if _series is not None:
            return
        data_path = Path(data_path).expanduser()
        _path = directory.choose(data_path)
        sweep(data_path)
        from prometheus_client import disable_created_metrics, values

        values.ValueClass = values.get_value_class()  # the choice just made, whoever imported it first
        disable_created_metrics()  # no *_created series: multiprocess mode has none either
        if _path is not None:
            for pid in directory.dead_pids(_path):
                process_ended(pid)
    set_leading(False)  # until the dispatcher says otherwise: a reused pid's old file may say 1


def sweep(data_path: Path) -> None:
    """Remove the metric directories of ``serve --workers`` and gunicorn masters that are gone."""
    for gone in directory.sweep(Path(data_path) / "metrics"):
        log.info("metrics: removed %s (its server no longer runs)", gone)


def multiprocess_path() -> Path | None:
    return _path


def process_ended(pid: int) -> None:
    """Worker ``pid`` exited: its per-process gauges (leadership) no longer count; its counters stay."""
    path = _path or os.environ.get(directory.VARIABLE)  # serve --workers' master: exported, no setup
    if path is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(path))


def _get() -> Series:
    global _series
    if _series is None:
        with _lock:
            if _series is None:
                _series = Series()
    return _series


# --- what the services record -------------------------------------------------------------------


def set_leading(leading: bool) -> None:
    """This process dispatches pipelines (True) or not (False) from now on."""
    _get().leading.set(1 if leading else 0)


def submitted(kind: str, accepted: bool) -> None:
    """A submitted pipeline (``kind``: its task type, or ``other``), queued or refused."""
    _get().submissions.labels(kind, "accepted" if accepted else "refused").inc()


def pipeline_started(submitted_at: float | None) -> None:
    """An attempt's script started (launched, or re-attached: an earlier try launched it).
    ``submitted_at``: the pipeline's submission time if this is its first script start, whatever the
    attempt (one that failed before its script ran does not count); None for a later start."""
    series = _get()
    series.starts.inc()
    if submitted_at is not None:
        series.submit_to_start.observe(max(0.0, time.time() - submitted_at))


def pipeline_ended(outcome: str) -> None:
    """An attempt ended: succeeded, failed, cancelled, timeout or retried (back to the queue)."""
    _get().ends.labels(outcome).inc()


def instance_booted(backend: str, seconds: float) -> None:
    _get().boot.labels(backend).observe(max(0.0, seconds))


def backend_retry(backend: str, operation: str) -> None:
    _get().backend_retries.labels(backend, operation).inc()


def backend_error(backend: str, operation: str) -> None:
    _get().backend_errors.labels(backend, operation).inc()


def schedule_request(policy: str, outcome: str, seconds: float) -> None:
    """``outcome``: ok, client_error or server_error."""
    _get().schedule.labels(policy, outcome).observe(seconds)


# --- what /metrics serves --------------------------------------------------------------------------

#: Rows counted in the database at scrape time: (name, help, label names, {label values: count}).
Census = list[tuple[str, str, tuple[str, ...], dict[tuple[str, ...], int]]]


def render(census: Callable[[], Census] | None = None) -> bytes:
    """The text exposition: this server's series (every worker's, merged) and ``census``'s gauges."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _get()
    registry = CollectorRegistry(auto_describe=False)
    if _path is not None:
        MultiProcessCollector(registry, str(_path))
    else:
        registry.register(_Forward(REGISTRY))
    if census is not None:
        registry.register(_Census(census))
    return generate_latest(registry)


class _Forward:
    def __init__(self, registry):
        self._registry = registry

    def collect(self) -> Iterable:
        return self._registry.collect()


class _Census:
    def __init__(self, census: Callable[[], Census]):
        self._census = census

    def collect(self) -> Iterable:
        from prometheus_client.core import GaugeMetricFamily

        for name, text, labels, counts in self._census():
            family = GaugeMetricFamily(PREFIX + name, text, labels=list(labels))
            for values, n in sorted(counts.items()):
                family.add_metric(list(values), n)
            yield family
