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


def deployment_runs() -> dict:
    """Whether the Prefect API answers, and the last run of each deployment of prefect.yaml.

    With no PREFECT_API_URL there is no lasting server to ask (each command starts a temporary
    one): said so, and nothing is started for it.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import get_current_settings

    from flows.deployments import load_deployments

    url = get_current_settings().api.url
    if not url:
        return {"api": None, "answers": None, "deployments": []}
    with get_client(sync_client=True) as client:
        cause = client.api_healthcheck()
        if cause is not None:
            return {"api": url, "answers": False, "error": f"{type(cause).__name__}: {cause}",
                    "deployments": []}
        declared = {d.name for d in load_deployments()}
        rows = []
        for deployment in client.read_deployments():
            if deployment.name not in declared:
                continue
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
                sort=FlowRunSort.START_TIME_DESC, limit=1)
            last = runs[0] if runs else None
            rows.append({"deployment": deployment.name,
                         "last_run": last.name if last else None,
                         "state": last.state_name if last else None,
                         "started": last.start_time.isoformat() if last else None})
    return {"api": url, "answers": True, "deployments": sorted(rows, key=lambda r: r["deployment"])}
