"""The Prefect API a command talks to, checked when a command fails."""

from __future__ import annotations

from tasks.core.errors import PrefectApiError


def unreachable_api() -> PrefectApiError | None:
    """The error to report when PREFECT_API_URL names a server that does not answer, else None.

    With no URL set, Prefect starts a temporary server of its own: nothing to check. Asked only
    after a command failed, so a run against a working server pays nothing for it.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return None
    with get_client(sync_client=True) as client:
        cause = client.api_healthcheck()
    return None if cause is None else PrefectApiError(url, cause)
