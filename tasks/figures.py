"""Matplotlib for files, not screens: the one place that picks the non-interactive backend."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: plotting is optional
    work, and importing matplotlib at module load would slow every command)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt



def save(fig, target, dpi: int = 110) -> None:
    """Lay a figure out tightly, write it as PNG and free it (the one way plots are saved)."""
    fig.tight_layout()
    fig.savefig(target, dpi=dpi)
    pyplot().close(fig)
