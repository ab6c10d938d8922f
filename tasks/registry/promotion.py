"""Promotion rules: when a new version becomes champion, and what a lone losing version serves."""

from __future__ import annotations

from tasks.core.version_files import Metrics
from tasks.registry.records import Fallback

TIE = 1e-9  # relative: a champion rescored from the lake differs from itself in the last bits


def promotion_decision(metrics: Metrics, champion: dict | None,
                       champion_rmse: float | None,
                       champion_crps: float | None = None) -> tuple[bool, str]:
    """Promote a version that is no worse than naive (RMSE) and the constant-volatility baseline
    (CRPS) on its test window (ties allowed: a gated version ties), and that beats the champion's
    CRPS (and does not lose on RMSE) on the same test window."""
    rmse, naive, crps = metrics.rmse, metrics.naive_rmse, metrics.crps
    constant = metrics.distribution.constant.crps if metrics.distribution is not None else None
    if rmse > naive:
        return False, (f"not promoted: RMSE {rmse:.4f} is worse than the naive baseline's "
                       f"{naive:.4f} on the test window")
    if crps is not None and constant is not None and crps > constant * (1 + TIE):
        return False, (f"not promoted: CRPS {crps:.4f} is worse than the constant-volatility "
                       f"baseline's {constant:.4f} on the test window")
    first = (f"RMSE {rmse:.4f} vs naive {naive:.4f}"
             + (f", CRPS {crps:.4f} vs constant volatility {constant:.4f}"
                if constant is not None else ""))
    if champion is None:
        return True, f"promoted: no worse than the baselines ({first}) and there is no champion"
    version = champion["version"]
    if champion_rmse is not None and rmse > champion_rmse:
        return False, (f"not promoted: RMSE {rmse:.4f} is worse than champion version "
                       f"{version}'s ({champion_rmse:.4f}) on the same test window")
    if crps is not None and champion_crps is not None and crps >= champion_crps * (1 - TIE):
        return False, (f"not promoted: CRPS {crps:.4f} does not beat champion version "
                       f"{version}'s ({champion_crps:.4f}) on the same test window")
    if crps is None and champion_rmse is not None and rmse >= champion_rmse:
        return False, (f"not promoted: RMSE {rmse:.4f} does not beat champion version "
                       f"{version}'s ({champion_rmse:.4f}) on the same test window")
    against = (f"CRPS {crps:.4f} < {champion_crps:.4f}" if champion_crps is not None
               and crps is not None else f"RMSE vs {champion_rmse}")
    return True, (f"promoted: {first}; beats champion version {version} on the same test "
                  f"window ({against})")


def fallback_for(metrics: Metrics) -> Fallback:
    """What a symbol's only version serves when it fails the test-window guard of
    ``promotion_decision``: the naive point forecast where its RMSE lost to naive's, constant
    volatility's range where its CRPS lost to constant's; its own forecast otherwise."""
    constant = metrics.distribution.constant.crps if metrics.distribution is not None else None
    lost_range = (metrics.crps is not None and constant is not None
                  and metrics.crps > constant * (1 + TIE))
    return Fallback(point="naive" if metrics.rmse > metrics.naive_rmse else None,
                    range="constant" if lost_range else None)
