"""Log-record markers shared by the tasks and the CLI's console."""

from __future__ import annotations

# Pass as ``extra=`` for detail (per-epoch lines) that the Prefect UI always shows and the
# console only at ``--verbose``.
DETAIL_KEY = "closecast_detail"
DETAIL: dict[str, bool] = {DETAIL_KEY: True}
