"""Back up an account's calls and recordings day by day on Dagster.

Install the extra and start Dagster's local UI on this file::

    pip install -e '.[dagster]'
    export VOICEAPI_BASE_URL=https://portal.example.com/api/v2/
    export VOICEAPI_TOKEN=...                  # read when a step runs, never stored
    export VOICEAPI_TIMEZONE=Asia/Kolkata      # the account's days
    dagster dev -f examples/dagster_defs.py    # then open http://127.0.0.1:3000

Without an account, serve the bundled simulator in another terminal
(``voiceapi serve-fake --port 8080``) and use
``VOICEAPI_BASE_URL=http://127.0.0.1:8080/api/v2/`` and ``VOICEAPI_TOKEN=demo-token``.

Each partition (``main|2024-03-05``) is one day of one account, written to
``dagster-export/main/<report>/date=2024-03-05/part-0.parquet`` exactly as
``voiceapi backfill --out dagster-export/main --format parquet`` writes it. The
schedule ``voiceapi_asia_kolkata_schedule`` (named after the zone; off until you
turn it on) reads the last three complete days again every night at 02:00 in the
account's zone.
"""

from __future__ import annotations

import os

from voiceapi_async.contrib.dagster import Account, voiceapi_definitions

defs = voiceapi_definitions(
    accounts=[
        Account(
            "main",
            token_env="VOICEAPI_TOKEN",
            base_url=os.environ.get("VOICEAPI_BASE_URL", "http://127.0.0.1:8080/api/v2/"),
            timezone=os.environ.get("VOICEAPI_TIMEZONE", "Asia/Kolkata"),
        )
    ],
    out=os.environ.get("VOICEAPI_DAGSTER_OUT", "dagster-export"),
    start_date=os.environ.get("VOICEAPI_DAGSTER_START", "2024-01-01"),
    format="parquet",
    lookback_days=3,
)
