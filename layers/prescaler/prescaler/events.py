"""Known events: a calendar of declared windows with an expected peak (a launch, a match, a sale).

The planner treats each event like a forecast window: over ``[start, end)`` the forecast is at least
the event's ``peak_invocations_per_minute`` (see :func:`prescaler.forecast.with_events`), so MinCapacity
is raised a lead time before the window opens and relaxed after it closes, with or without a learned
pattern.

Two formats, the same fields:

- JSON: a list of objects, e.g. ``[{"name": "launch", "start": "2026-03-02T09:00:00Z",
  "end": "2026-03-02T10:00:00Z", "peak_invocations_per_minute": 12000}]`` (the Lambda setting
  ``KNOWN_EVENTS`` holds this text; the CLI's ``--events`` reads it from a ``.json`` file);
- CSV with a header row ``name,start,end,peak_invocations_per_minute`` (``name`` optional).

Times are ISO 8601; a time without a zone is UTC; an offset (``+01:00``, ``Z``) is read, a zone NAME
(``CET``) is refused, and numeric day/month dates (``03/01/2026``) are refused unless the caller says
they are day first (the CLI's ``--dayfirst``). A peak is a number, never a boolean. At most ``MAX_EVENTS`` events,
each at most ``MAX_EVENT_DAYS`` long.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from prescaler.history import AmbiguousDates, ZoneName, to_utc

MAX_EVENTS = 500
MAX_EVENT_DAYS = 14


class EventsError(ValueError):
    """The calendar cannot be read; the message names the event and the field."""


class KnownEvent(BaseModel):
    """One declared window: ``[start, end)`` UTC with an expected peak (invocations per minute)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)

    name: str = Field("event", min_length=1, max_length=200)
    start: pd.Timestamp
    end: pd.Timestamp
    peak_invocations_per_minute: float = Field(ge=0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _utc(cls, value: Any, info: ValidationInfo) -> pd.Timestamp:
        if isinstance(value, bool | int | float):
            raise ValueError(f"not an ISO 8601 time: {value!r} (a number, not a time)")
        dayfirst = bool((info.context or {}).get("dayfirst", False))
        try:
            ts = to_utc(value, dayfirst=dayfirst)
        except (AmbiguousDates, ZoneName) as exc:
            raise ValueError(str(exc)) from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from exc
        if pd.isna(ts):
            raise ValueError(f"not an ISO 8601 time: {value!r}")
        return ts.floor("min")

    @field_validator("peak_invocations_per_minute", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in ("true", "false")):
            raise ValueError(f"must be a number of invocations per minute, not a boolean ({value!r})")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> KnownEvent:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        if self.end - self.start > pd.Timedelta(days=MAX_EVENT_DAYS):
            raise ValueError(f"longer than {MAX_EVENT_DAYS} days")
        return self


def parse(records: list[Any], *, dayfirst: bool = False) -> tuple[KnownEvent, ...]:
    """Validate a list of event objects (``dayfirst``: numeric dates are day first, else refused).

    Raises:
        EventsError: not a list, too many events, or one line naming the first bad event and field.
    """
    if not isinstance(records, list):
        raise EventsError("known events: expected a list of objects with start, end and peak_invocations_per_minute")
    if len(records) > MAX_EVENTS:
        raise EventsError(f"known events: {len(records)} events, at most {MAX_EVENTS}")
    out = []
    for i, record in enumerate(records):
        try:
            out.append(KnownEvent.model_validate(record, context={"dayfirst": dayfirst}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err.get("loc", ())) or "event"
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            raise EventsError(f"known event #{i + 1} ({where}): {message}") from None
    return tuple(sorted(out, key=lambda ev: ev.start))


def from_json(text: str, *, dayfirst: bool = False) -> tuple[KnownEvent, ...]:
    """Events from JSON text (the ``KNOWN_EVENTS`` setting). Empty text: no events.

    Raises:
        EventsError: not JSON, or an invalid event.
    """
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventsError(f"known events: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return parse(data, dayfirst=dayfirst)


def from_csv(text: str, *, dayfirst: bool = False) -> tuple[KnownEvent, ...]:
    """Events from CSV text with a header row ``name,start,end,peak_invocations_per_minute``.

    Raises:
        EventsError: a missing column or an invalid event.
    """
    try:
        # 'nan' / 'NA' stay text, refused as not a finite number (not dropped as "Field required")
        frame = pd.read_csv(io.StringIO(text), dtype=str, skipinitialspace=True, keep_default_na=False,
                            na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise EventsError(f"known events: unreadable CSV: {str(exc).splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("start", "end", "peak_invocations_per_minute") if c not in frame.columns]
    if missing:
        raise EventsError(f"known events: CSV header lacks {', '.join(missing)} "
                          "(expected name,start,end,peak_invocations_per_minute)")
    records = [{k: v for k, v in row.items() if isinstance(v, str)} for row in frame.to_dict("records")]
    return parse(records, dayfirst=dayfirst)


def load(path: str | Path, *, dayfirst: bool = False) -> tuple[KnownEvent, ...]:
    """Events from a ``.json`` file or a CSV file (any other name); ``dayfirst`` as for :func:`parse`.

    Raises:
        EventsError: no such file, or invalid content.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EventsError(f"known events: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EventsError(f"known events: cannot read {str(path)!r}: {exc}") from None
    return from_json(text, dayfirst=dayfirst) if p.suffix.lower() == ".json" else from_csv(text, dayfirst=dayfirst)


def overlapping(known: tuple[KnownEvent, ...], start: pd.Timestamp, end: pd.Timestamp) -> tuple[KnownEvent, ...]:
    """The events whose window ``[ev.start, ev.end)`` overlaps ``[start, end)`` (UTC), in order."""
    return tuple(ev for ev in known if ev.start < end and ev.end > start)


def describe(known: tuple[KnownEvent, ...], most: int = 3) -> str:
    """Up to ``most`` events as ``'name' (start to end)``, then how many more, for one line of text."""
    shown = [f"{ev.name!r} ({ev.start:%Y-%m-%d %H:%M} to {ev.end:%Y-%m-%d %H:%M} UTC)" for ev in known[:most]]
    more = len(known) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
