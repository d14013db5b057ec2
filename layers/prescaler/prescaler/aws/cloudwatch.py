"""CloudWatch: the ``Invocations`` history reader, the GPU and latency reads, and PutMetricData.

History is read the way PROBLEM.md and ARCHITECTURE.md require:

- ``AWS/SageMaker`` ``Invocations`` with *both* dimensions ``EndpointName`` and ``VariantName``
  (SageMaker publishes the metric with both; a query with one of them matches nothing);
- statistic ``Sum`` (SageMaker writes one StatisticSet per minute, e.g. SampleCount 600, Sum 600,
  Minimum 1, Maximum 1: ``Average`` would read 1);
- ``StartTime``/``EndTime`` floored to the period, so two ticks 40 s apart ask for identical buckets;
- ``ScanBy=TimestampAscending``, every ``NextToken`` page, de-duplicated, zero-filled by
  :func:`prescaler.history.per_minute` (a minute with no traffic has no datapoint);
- never more than :data:`prescaler.history.MAX_HISTORY` (14 days; 1-minute data is kept 15 days);
- many endpoint variants in one ``GetMetricData`` call (up to 500 queries per call).

An inference component is read the same way with its own identity (:class:`Component`): SageMaker
publishes the component's invocation metrics (``Invocations``, ``InvocationsPerCopy``, ``ModelLatency``,
...; and the high-resolution ``ConcurrentRequestsPerCopy``) in ``AWS/SageMaker`` with the single
dimension ``InferenceComponentName``, and its utilization metrics in
``/aws/sagemaker/InferenceComponents`` (SageMaker developer guide, "SageMaker AI inference component
metrics").

An answer with no datapoints at all is *no data*, never zero demand: :class:`MetricHistory` carries
the datapoint count, and :func:`read_invocations` raises :class:`NoMetricData`.

Zero-filling happens only inside the span the service has published: up to the newest datapoint,
or up to ``published_until`` when the caller knows SageMaker was still publishing (its instance
metrics, which arrive every minute whether or not there is traffic). A late publication therefore
shows as a series that ends early (stale, :attr:`MetricHistory.newest`), not as minutes of zero demand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from prescaler.history import MAX_HISTORY, HistoryError, per_minute, to_utc

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
#: SageMaker's instance-level metrics (GPUUtilization, CPUUtilization, ...) live here.
ENDPOINT_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
#: GetMetricData accepts at most 500 queries per call (CloudWatch API reference).
MAX_QUERIES_PER_CALL = 500

#: Where an inference component's utilization metrics (CPUUtilizationNormalized, ...) live.
INFERENCE_COMPONENT_NAMESPACE = "/aws/sagemaker/InferenceComponents"

Variant = tuple[str, str]  # (endpoint name, variant name)


@dataclass(frozen=True)
class Component:
    """An inference component as a metric source: dimension ``InferenceComponentName`` only."""

    name: str


#: What a query reads: an endpoint variant (both dimensions) or an inference component.
MetricSource = Variant | Component


class MetricReadError(RuntimeError):
    """CloudWatch answered a query with ``InternalError`` / ``Forbidden``: the data is unreadable."""


class NoMetricData(MetricReadError):
    """No datapoint at all in the window (wrong names, wrong dimensions, or no traffic for 14 days)."""


@dataclass(frozen=True)
class MetricHistory:
    """One variant's per-minute series plus how many datapoints CloudWatch actually returned.

    ``datapoints == 0`` means CloudWatch returned nothing: *no data*, not zero demand.
    """

    series: pd.Series
    datapoints: int
    #: start of the newest minute with a datapoint (UTC), None when there is none
    newest: pd.Timestamp | None = None

    @property
    def empty(self) -> bool:
        return self.datapoints == 0


def align(ts: datetime | pd.Timestamp, period_s: int) -> pd.Timestamp:
    """Floor a time to a multiple of ``period_s`` seconds since the epoch (UTC)."""
    return to_utc(ts).floor(pd.Timedelta(seconds=period_s))


def dimensions(endpoint_name: str, variant_name: str) -> list[dict[str, str]]:
    """Both SageMaker dimensions, exactly as SageMaker publishes them."""
    return [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant_name}]


def source_dimensions(source: MetricSource) -> list[dict[str, str]]:
    """The dimensions SageMaker publishes a source's metrics with: ``EndpointName`` + ``VariantName``
    for a variant, ``InferenceComponentName`` for an inference component."""
    if isinstance(source, Component):
        return [{"Name": "InferenceComponentName", "Value": source.name}]
    return dimensions(*source)


def _query(qid: str, namespace: str, metric: str, source: MetricSource, stat: str, period_s: int) -> dict:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": source_dimensions(source)},
            "Period": period_s,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def get_metric_data(
    client: Any,
    queries: Sequence[dict],
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> dict[str, tuple[pd.DatetimeIndex, np.ndarray]]:
    """Run ``queries`` over ``[start, end)`` through every page (up to 500 queries per call);
    (UTC timestamps, float values) per query id, in the order CloudWatch returned them.

    Each page is converted to arrays as it arrives (8 bytes a timestamp, 8 a value): 500 variants x
    14 days is 10 million datapoints, which as Python ``datetime`` and ``float`` objects would need
    about a gigabyte.

    Raises:
        MetricReadError: a query came back ``InternalError`` or ``Forbidden``.
    """
    chunks: dict[str, tuple[list[pd.DatetimeIndex], list[np.ndarray]]] = {q["Id"]: ([], []) for q in queries}
    paginator = client.get_paginator("get_metric_data")
    for i in range(0, len(queries), MAX_QUERIES_PER_CALL):
        pages = paginator.paginate(
            MetricDataQueries=list(queries[i : i + MAX_QUERIES_PER_CALL]),
            StartTime=start.to_pydatetime(),
            EndTime=end.to_pydatetime(),
            ScanBy="TimestampAscending",
        )
        for page in pages:
            for result in page.get("MetricDataResults", []):
                if result.get("StatusCode") in ("InternalError", "Forbidden"):
                    raise MetricReadError(
                        f"GetMetricData {result['Id']}: {result.get('StatusCode')} "
                        f"{result.get('Messages', [])}"
                    )
                ts, vals = chunks.setdefault(result["Id"], ([], []))
                if result.get("Timestamps"):
                    ts.append(pd.DatetimeIndex(pd.to_datetime(result["Timestamps"], utc=True)))
                    vals.append(np.asarray(result.get("Values", []), dtype=float))
    empty = pd.DatetimeIndex([], tz="UTC")
    out: dict[str, tuple[pd.DatetimeIndex, np.ndarray]] = {}
    for qid in list(chunks):  # popped one by one: the pages and the arrays never both held in full
        ts, vals = chunks.pop(qid)
        out[qid] = (pd.DatetimeIndex(empty.append(ts)) if ts else empty, np.concatenate(vals) if vals else np.empty(0))
    return out


def read_many(
    client: Any,
    variants: Iterable[MetricSource],
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    *,
    metric: str = "Invocations",
    namespace: str = SAGEMAKER_NAMESPACE,
    stat: str = "Sum",
    period_s: int = 60,
    published_until: datetime | pd.Timestamp | Mapping[MetricSource, datetime | pd.Timestamp | None] | None = None,
) -> dict[MetricSource, MetricHistory]:
    """Per-minute history of a count metric for many endpoint variants (and inference components) in
    one ``GetMetricData`` call.

    Args:
        client: a boto3 CloudWatch client.
        variants: (endpoint name, variant name) pairs and/or :class:`Component` s.
        start, end: the window; both floored to the period, ``end`` exclusive (pass
            :func:`prescaler.history.complete_end` for complete minutes only). ``start`` is raised to
            ``end - 14 days`` (retention).
        metric, namespace, stat, period_s: what to read (default ``AWS/SageMaker`` ``Invocations``
            ``Sum`` per 60 s). A count over a longer period is spread evenly over its minutes.
        published_until: exclusive end of the span the service is known to have published (e.g.
            the minute after the newest instance-metric datapoint), or one per variant (a mapping; a
            variant missing from it has none). Minutes after both this and the newest datapoint are
            not zero-filled: publication may be late, which is not zero demand.

    Returns:
        For each variant, a :class:`MetricHistory`: a per-minute UTC float series (name
        ``invocations``) over ``[start, e)``, zero where CloudWatch had no datapoint inside the
        published span, where ``e`` is ``end`` capped at the end of the published span (the newest
        datapoint's period, or ``published_until`` when later); the number of datapoints returned;
        and the newest datapoint's time.

    Raises:
        MetricReadError: CloudWatch could not read a query.
        HistoryError: the window is empty or negative.
    """
    pairs = list(dict.fromkeys(variants))
    hi = align(end, period_s)
    lo = max(align(start, period_s), align(hi - MAX_HISTORY, period_s))
    if lo >= hi:
        raise HistoryError(f"empty window: start {lo} is not before end {hi}")
    queries = [_query(f"q{i}", namespace, metric, pair, stat, period_s) for i, pair in enumerate(pairs)]
    raw = get_metric_data(client, queries, lo, hi)
    out: dict[MetricSource, MetricHistory] = {}
    shared: pd.Index | None = None
    for i, pair in enumerate(pairs):
        ts, vals = raw.pop(f"q{i}")  # released as converted (500 variants x 14 days is ~160 MB)
        newest = ts.max() if len(ts) else None
        edge = hi
        if newest is not None:
            published = align(newest, period_s) + pd.Timedelta(seconds=period_s)
            until = published_until.get(pair) if isinstance(published_until, Mapping) else published_until
            if until is not None:
                published = max(published, align(until, period_s))
            edge = min(hi, max(lo + pd.Timedelta(seconds=period_s), published))
        series = per_minute(ts, vals, interval=pd.Timedelta(seconds=period_s), start=lo, end=edge)
        if shared is not None and series.index.equals(shared):
            series.index = shared  # one index object for every variant with the same span (memory)
        shared = series.index
        out[pair] = MetricHistory(series, len(ts), newest)
    return out


def read_invocations(
    client: Any,
    endpoint_name: str,
    variant_name: str,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    *,
    period_s: int = 60,
) -> pd.Series:
    """Per-minute ``Invocations`` (Sum) of one variant over ``[start, end)`` (the CLI's backtest reader).

    A backtest reads a window the user chose, up to ``end``: every minute in it without a datapoint
    is zero (``published_until=end``). The functions read through :func:`read_many` instead, which
    zero-fills only the span SageMaker is known to have published.

    Returns:
        A per-minute UTC float series, zero-filled, at most 14 days long.

    Raises:
        NoMetricData: CloudWatch has no datapoint in the window: check the endpoint and variant
            names (both dimensions are required); an empty answer is never read as zero demand.
        MetricReadError: CloudWatch could not read the query.
    """
    history = read_many(client, [(endpoint_name, variant_name)], start, end, period_s=period_s,
                        published_until=end)[(endpoint_name, variant_name)]
    if history.empty:
        raise NoMetricData(
            f"no AWS/SageMaker Invocations datapoints for EndpointName={endpoint_name} "
            f"VariantName={variant_name} between {align(start, period_s)} and {align(end, period_s)}"
        )
    return history.series


def latest_average(
    client: Any,
    endpoint_name: str,
    variant_name: str,
    metrics: Sequence[tuple[str, str]],
    end: datetime | pd.Timestamp,
    *,
    minutes: int = 5,
) -> dict[str, tuple[pd.Timestamp, float] | None]:
    """The newest 1-minute ``Average`` of each (namespace, metric name) in ``[end - minutes, end)``.

    Used for ``GPUUtilization`` (``/aws/sagemaker/Endpoints``, percent summed over the instance's
    GPUs) and ``ModelLatency`` (``AWS/SageMaker``, microseconds). Returns None for a metric with no
    datapoint.
    """
    hi = align(end, 60)
    lo = hi - pd.Timedelta(minutes=minutes)
    queries = [
        _query(f"q{i}", ns, name, (endpoint_name, variant_name), "Average", 60)
        for i, (ns, name) in enumerate(metrics)
    ]
    raw = get_metric_data(client, queries, lo, hi)
    out: dict[str, tuple[pd.Timestamp, float] | None] = {}
    for i, (_, name) in enumerate(metrics):
        ts, vals = raw[f"q{i}"]
        points = sorted((to_utc(t), float(v)) for t, v in zip(ts, vals, strict=True) if math.isfinite(v))
        out[name] = points[-1] if points else None
    return out


def microseconds_to_ms(value_us: float) -> float:
    """``ModelLatency`` / ``OverheadLatency`` are published in microseconds: 250000 us -> 250.0 ms."""
    return value_us / 1000.0


#: PutMetricData accepts timestamps up to two weeks in the past and up to two hours in the future
#: (CloudWatch API reference, MetricDatum ``Timestamp``); one datapoint outside that range makes it
#: reject the whole call (``InvalidParameterValue``).
MAX_DATAPOINT_AGE = pd.Timedelta(days=14)
MAX_DATAPOINT_LEAD = pd.Timedelta(hours=2)


def unpublishable(timestamp: datetime | pd.Timestamp, now: datetime | pd.Timestamp) -> str | None:
    """Why PutMetricData would reject a datapoint at ``timestamp`` when sent at ``now`` (wall clock,
    UTC), or None when it would be accepted."""
    ts, at = to_utc(timestamp), to_utc(now)
    if ts < at - MAX_DATAPOINT_AGE:
        return f"datapoint at {ts.isoformat()} is older than 14 days (now {at.isoformat()}): PutMetricData rejects it"
    if ts > at + MAX_DATAPOINT_LEAD:
        return f"datapoint at {ts.isoformat()} is more than 2 hours ahead of now ({at.isoformat()})"
    return None


def put_metric(
    client: Any,
    namespace: str,
    name: str,
    points: Sequence[tuple[pd.Timestamp, float]],
    unit: str,
    dims: list[dict[str, str]],
    now: datetime | pd.Timestamp,
) -> list[str]:
    """Publish ``points`` ((time, value) pairs) of one metric with ``PutMetricData`` (IAM allows only
    the project's namespace), up to 1000 per call.

    A datapoint PutMetricData would reject (older than 14 days or more than 2 hours ahead of
    ``now``, the wall clock) is dropped, so the rest is still published.

    Returns:
        One message per dropped datapoint (empty when all were sent); the caller logs them.
    """
    dropped: list[str] = []
    data = []
    for ts, value in points:
        why = unpublishable(ts, now)
        if why is not None:
            dropped.append(f"{namespace} {name}: {why}; dropped")
            continue
        data.append({"MetricName": name, "Dimensions": dims, "Timestamp": to_utc(ts).to_pydatetime(),
                     "Value": float(value), "Unit": unit})
    for i in range(0, len(data), 1000):
        client.put_metric_data(Namespace=namespace, MetricData=data[i : i + 1000])
    return dropped
