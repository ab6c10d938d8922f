"""The predict flow: the champion of a symbol forecasts the next N business days recursively."""

from __future__ import annotations

import json

from prefect import flow

from tasks.core.symbols import normalize_symbol
from tasks.serving.predict import forecast_task


@flow(name="closecast-predict")
def predict_flow(symbol: str, horizon: int = 5, home: str = "data", fmt: str = "csv") -> dict:
    """Forecast a symbol's next ``horizon`` business days with its champion."""
    from flows.schedule import confine_deployment_run

    confine_deployment_run(home)
    return forecast_task(home, normalize_symbol(symbol, "symbol"), horizon, fmt)


def summary_json(result: dict) -> str:
    """The --json line: symbol, version and the forecast."""
    return json.dumps({key: result[key] for key in ("symbol", "version", "source", "forecast")})
