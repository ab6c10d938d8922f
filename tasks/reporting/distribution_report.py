"""The distribution part of a version's report: the table against the volatility baselines,
the gate's decision and the VaR verdicts in plain words."""

from __future__ import annotations

from tasks.core.version_files import Metrics, ModelScores, Scores
from tasks.distribution.gate import MIN_POOLED_GAIN

NAMES = {"model": "this version", "constant": "constant volatility (normal)",
         "ewma": "RiskMetrics EWMA 0.94 (normal)", "garch": "GARCH(1,1) Student-t"}
SOURCES = {"lstm": "the LSTM's own Student-t distribution", "constant": NAMES["constant"],
           "ewma": NAMES["ewma"], "garch": NAMES["garch"]}


def pooled_gate_text(model: ModelScores) -> str | None:
    """Which distribution a version of a network fit on many symbols carries and why (None:
    a per-symbol gate, or a version written before the pooled gate had a baseline family)."""
    gate = model.pooled_gate
    if gate is None or gate.family is None or gate.gain is None or gate.lower is None:
        return None
    verdict = ("so the network serves the market" if gate.accepted else
               "so the network does not serve the market")
    ratio = gate.validation_crps_ratio
    own = (f" On this symbol's validation days the network's CRPS was x{ratio:.4f} the "
           f"family's (a symbol leaves the pooled decision only where its own validation days "
           f"say so beyond {gate.tolerance:.0%})." if ratio is not None else "")
    rule = f"it serves when the gain is at least {MIN_POOLED_GAIN:.1%} and the bound above 0"
    return (f"The network was trained on {gate.symbols} symbols and gated once, on their pooled "
            f"validation days, against the run's baseline family {SOURCES[gate.family]}: a CRPS "
            f"gain of {gate.gain:.2%} (one-sided lower bound {gate.lower:.2%}; {rule}), "
            f"{verdict}.{own} This version carries {SOURCES[model.source]}.")


def gate_text(model: ModelScores) -> str:
    """Which distribution the version carries and why."""
    pooled = pooled_gate_text(model)
    if pooled is not None:
        return pooled
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


def network_against_garch(network: Scores | None, garch: Scores | None,
                          widened: dict[str, int] | None = None) -> str | None:
    """The network's own distribution against GARCH-t on the test window, in one sentence
    (None: no network distribution, or scores written before log scores were); ``widened``:
    the largest-move days and on how many the network's range was the wider."""
    if network is None or garch is None or network.log_score is None or garch.log_score is None:
        return None
    text = (f"The network's own distribution, served or not, on the test window: CRPS "
            f"x{network.crps / garch.crps:.4f} GARCH-t's, log score "
            f"{network.log_score - garch.log_score:+.4f} nats per day against GARCH-t's")
    tails = network.large_move_coverage_95, garch.large_move_coverage_95
    if None not in tails:
        text += (f"; on the 5% of test days with the largest moves its 95% range held "
                 f"{tails[0]:.0%} of them, GARCH-t's {tails[1]:.0%}")
    if widened and widened.get("days") and widened.get("wider"):
        text += (f", and on {widened['wider']} of those {widened['days']} days it had widened "
                 f"the range beyond GARCH-t's the day before (marked ▲ in the fan plot)")
    elif widened and widened.get("days"):
        text += (f", and on none of those {widened['days']} days had it widened the range "
                 "beyond GARCH-t's the day before")
    return text + "."


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
    network = network_against_garch(dist.model.lstm_ungated, dist.garch,
                                    dist.model.large_moves_widened)
    lines += ["", network] if network else []
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
