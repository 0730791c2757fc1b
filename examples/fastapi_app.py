"""A FastAPI application serving the Voice API's reports, streamed.

Run it against the bundled simulator::

    python -m voiceapi_async.testing serve --port 8080 &
    export VOICEAPI_BASE_URL=http://127.0.0.1:8080/api/v2/ VOICEAPI_TOKEN=demo-token
    export VOICEAPI_TIMEZONE=Asia/Kolkata   # the account's: required, no default
    uvicorn fastapi_app:app --app-dir examples

``VOICEAPI_TIMEZONE`` is the account's time zone, from the account's settings in the
provider's dashboard (the simulator's is Asia/Kolkata); without it the app refuses
to start, saying so.

Endpoints:

- ``GET /calls?from=2024-03-01&to=2024-03-31[&format=csv]``: NDJSON (or CSV), streamed.
- ``GET /recordings?from=...&to=...``: the same for recordings.
- ``GET /calls/summary?day=2024-03-05``: counts by status, total charges and billed
  minutes, computed while streaming (nothing is held in memory but the totals).
- ``GET /health``: liveness, and the shared client's counters.

A range longer than ``VOICEAPI_MAX_DAYS`` days (default 3660), or a day outside
0001-01-02..9999-12-30, is a 422 that says so, answered before anything is fetched.
Every error has one body, ``{"error": {"code", "status", "message", "details"}}``;
``/docs`` shows each route's media types, the row schemas and the error answers.
If the upstream fails after a response started, the body ends with one error line
(``{"error": {...}}`` in NDJSON, a ``#error,...`` row in CSV) and the connection is
closed without the final chunk; see :mod:`voiceapi_async.contrib.fastapi`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query

from voiceapi_async import ClientConfig, Report, VoiceClient
from voiceapi_async.contrib.fastapi import (
    RecordStreamResponse,
    csv_response,
    error_responses,
    get_voice_client,
    install_error_handlers,
    ndjson_response,
    open_stream,
    stream_route,
    voice_client_lifespan,
)

app = FastAPI(title="Voice API reports", lifespan=voice_client_lifespan(ClientConfig.from_env))
install_error_handlers(app)

Client = Annotated[VoiceClient, Depends(get_voice_client)]
From = Annotated[dt.date, Query(alias="from", description="first day, YYYY-MM-DD")]
To = Annotated[dt.date, Query(alias="to", description="last day, inclusive")]
Format = Annotated[Literal["ndjson", "csv"], Query(alias="format")]


@app.get("/calls", **stream_route(Report.CALLS))
async def calls(
    client: Client, start: From, end: To, fmt: Format = "ndjson"
) -> RecordStreamResponse:
    """Stream the calls of a range."""
    stream = open_stream(lambda: client.calls(start, end))
    return await (csv_response(stream) if fmt == "csv" else ndjson_response(stream))


@app.get("/recordings", **stream_route(Report.RECORDINGS))
async def recordings(
    client: Client, start: From, end: To, fmt: Format = "ndjson"
) -> RecordStreamResponse:
    """Stream the recordings of a range."""
    stream = open_stream(lambda: client.recordings(start, end))
    return await (csv_response(stream) if fmt == "csv" else ndjson_response(stream))


@app.get("/calls/summary", responses=error_responses())
async def calls_summary(client: Client, day: dt.date) -> dict[str, object]:
    """Summarise one day's calls while streaming them."""
    by_status: Counter[str] = Counter()
    charges = Decimal("0")
    billed_seconds = 0
    async with open_stream(lambda: client.calls(day, day)) as stream:
        async for call in stream:
            by_status[str(call.status)] += 1
            charges += call.charges
            billed_seconds += int(call.billing.total_seconds())
    return {
        "day": day.isoformat(),
        "calls": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        "total_charges": str(charges),
        "billed_minutes": round(billed_seconds / 60, 2),
    }


@app.get("/health")
async def health(client: Client) -> dict[str, object]:
    """Liveness and the shared client's counters."""
    stats = client.stats
    return {
        "status": "ok",
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited": stats.rate_limited,
        "pages": stats.pages,
        "records": stats.records,
    }
