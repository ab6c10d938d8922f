"""The distribution part of a version's report: the table against the volatility baselines,
the gate's decision and the VaR verdicts in plain words."""

from __future__ import annotations

from tasks.core.version_files import Metrics, ModelScores

NAMES = {"model": "this version", "constant": "constant volatility (normal)",
         "ewma": "RiskMetrics EWMA 0.94 (normal)", "garch": "GARCH(1,1) Student-t"}
SOURCES = {"lstm": "the LSTM's own Student-t distribution", "constant": NAMES["constant"],
           "ewma": NAMES["ewma"], "garch": NAMES["garch"]}


HYBRID_METHOD = (
    "Method: the LSTM corrects GARCH(1,1) Student-t instead of replacing it: its last layer "
    "moves GARCH-t's location, scale (times exp) and degrees of freedom, starts at zero (the "
    "untrained network is GARCH-t) and is trained on the Student-t negative log-likelihood, a "
    "proper scoring rule; when no epoch beats GARCH-t on validation it stays GARCH-t. Its "
    "inputs, all known at the forecast's origin: each lagged day's return, |r| and r^2, the "
    "GARCH(1,1) and EWMA sigma of the next day (fit on the training rows only, rolled forward "
    "without refitting) and the day's Parkinson and Garman-Klass range estimators. Baselines "
    "are fit on the training rows only and rolled forward without refitting.")
METHOD = ("Method: the LSTM's last layer predicts the location, scale (softplus) and degrees of "
          "freedom (softplus + 2) of a Student-t distribution of the next day's log return, "
          "trained on its negative log-likelihood, a proper scoring rule; its inputs add |r| and "
          "r^2 of each lagged day. Why not 11 pinball-loss quantile outputs: measured on four "
          "real symbols (benchmarks/compare_heads.py), a non-crossing quantile head scored only "
          "0.4% better on mean pinball (0.847 vs 0.851 of constant volatility; clearly better on "
          "one symbol of four) and neither beat GARCH(1,1)-t; the Student-t keeps what closecast "
          "uses and quantile outputs lack: tails beyond the 1%/99% levels, closed-form CRPS, and "
          "a whole distribution to simulate multi-day paths from. Baselines are fit on the "
          "training rows only and rolled forward without refitting.")


def gate_text(model: ModelScores) -> str:
    """Which distribution the version carries and why."""
    best, dm = model.validation_best_baseline, model.validation_dm
    if dm is None:
        return (f"The model gives no distribution of its own, so this version carries the best "
                f"baseline on the validation split: {SOURCES[model.source]}.")
    if model.source == "lstm":
        return (f"The LSTM's distribution beat the best baseline on the validation split "
                f"({SOURCES[best]}) with a Diebold-Mariano statistic of {dm:.2f} on CRPS, so "
                "this version carries it.")
    return (f"The LSTM's distribution did not beat the best baseline on the validation split "
            f"(CRPS Diebold-Mariano statistic {dm:.2f}, below the gate), so this version carries "
            f"{SOURCES[model.source]} instead.")


def var_verdict(name: str, level: str, test: dict) -> str:
    """One plain sentence on a VaR backtest."""
    rate, p_pof, p_ind = test["hit_rate"] * 100, test["kupiec_p"], test["christoffersen_p"]
    count = ("the right number of" if p_pof >= 0.05 else
             "too many" if rate > float(level.rstrip("%")) else "too few")
    clusters = ("not clustered" if p_ind >= 0.05 else "clustered in time")
    return (f"- {NAMES[name]}, {level} VaR: closes fell below it on {rate:.1f}% of days "
            f"({test['hits']} day(s)): {count} breaches (Kupiec p = {p_pof:.2f}), "
            f"{clusters} (Christoffersen p = {p_ind:.2f}).")


def distribution_lines(metrics: Metrics, head: str | None = None,
                       plots: bool = True) -> list[str]:
    """Markdown: the predictive distribution against the three baselines on the test window
    (``head``: the network's head, which the method note describes; ``plots``: with its fan,
    calibration and PIT plots)."""
    dist = metrics.distribution
    if dist is None:
        return []
    lines = ["## Predictive distribution on the test window", "", gate_text(dist.model), "",
             HYBRID_METHOD if head == "hybrid" else METHOD, "",
             "| forecaster | CRPS | CRPS / constant | pinball | cover 50% | cover 80% | "
             "cover 95% | width 80% | 5-day 80% cover |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in dist.forecasters().items():
        five = m.coverage_5d_80
        lines.append(
            f"| {NAMES[name]} | {m.crps:.4f} | {m.crps_vs_constant:.3f} | "
            f"{m.pinball:.4f} | {m.coverage['50']:.3f} | {m.coverage['80']:.3f} | "
            f"{m.coverage['95']:.3f} | {m.width['80']:.3f} | "
            f"{'–' if five is None else f'{five:.3f}'} |")
    dm = dist.model.dm_vs
    lines += ["", "CRPS is in price units (the log-return CRPS times the previous close). "
              "Diebold-Mariano statistic of this version's CRPS gain on the test window: "
              + ", ".join(f"vs {NAMES[k]} {v:.2f}" for k, v in dm.items()) + ".", "",
              "### Value-at-Risk backtests", ""]
    for name, scores in (("model", dist.model), ("garch", dist.garch)):
        for level, test in (scores.var_backtest if scores is not None else {}).items():
            lines.append(var_verdict(name, level, test))
    if not plots:
        return lines + [""]
    return lines + ["", "![fan](plots/fan.png)", "", "![calibration](plots/calibration.png)", "",
                    "![PIT](plots/pit.png)", ""]
