"""The distribution part of a version's report: the table against the volatility baselines,
the gate's decision and the VaR verdicts in plain words."""

from __future__ import annotations

from tasks.core.version_files import Metrics, ModelScores

NAMES = {"model": "this version", "constant": "constant volatility (normal)",
         "ewma": "RiskMetrics EWMA 0.94 (normal)", "garch": "GARCH(1,1) Student-t"}
SOURCES = {"lstm": "the LSTM's own Student-t distribution", "constant": NAMES["constant"],
           "ewma": NAMES["ewma"], "garch": NAMES["garch"]}


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
                       plots: bool = True, features: dict | None = None) -> list[str]:
    """Markdown: the predictive distribution against the three baselines on the test window
    (``head``: the name of the network's head, whose method note the report gives, with the
    optional inputs ``features`` turns on; ``plots``: with its fan, calibration and PIT
    plots)."""
    from tasks.forecaster.heads import Head, head_named, method_text

    dist = metrics.distribution
    if dist is None:
        return []
    method = method_text(head_named(head) if head else Head(), features)
    lines = ["## Predictive distribution on the test window", "", gate_text(dist.model), "",
             method, "",
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
