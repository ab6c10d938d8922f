"""Images inside Markdown artifacts: PNGs as ``data:image/png;base64,...`` URIs.

The Prefect UI cannot follow a relative ``plots/x.png`` (a broken image); a data URI renders
(Prefect 3.8, checked in Chromium). Images are downscaled so an artifact stays small.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

from tasks.core.errors import ClosecastError
from tasks.core.paths import confined

MAX_WIDTH = 720  # px: the UI's artifact column is about this wide
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def png_data_uri(data: bytes, max_width: int = MAX_WIDTH) -> str:
    """A PNG as a data URI, resized to at most ``max_width`` pixels wide (palette-quantised)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        if image.width > max_width:
            height = round(image.height * max_width / image.width)
            image = image.convert("RGB").resize((max_width, height), Image.LANCZOS)
            image = image.quantize(colors=128)
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=True)
            data = out.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_data_uri(fig, dpi: int = 80) -> str:
    """A Matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    plt.close(fig)
    return png_data_uri(out.getvalue())


def inline_images(markdown: str, base: Path) -> str:
    """Replace each ``![alt](relative/x.png)`` by the image as a data URI.

    Only paths inside ``base`` are read (each part through ``confined``); an image that
    cannot be read becomes its alt text, so no relative reference is left behind.
    """
    def replace(match: re.Match) -> str:
        alt, src = match.group(1), match.group(2)
        if src.startswith("data:") or "://" in src:
            return match.group(0)
        try:
            data = confined(base, *src.split("/")).read_bytes()
        except (OSError, ClosecastError):
            return f"*({alt}: image unavailable)*"
        return f"![{alt}]({png_data_uri(data)})"

    return _IMAGE.sub(replace, markdown)


def relative_images(markdown: str) -> list[str]:
    """Image references that are neither data URIs nor absolute http(s) URLs."""
    return [src for _, src in _IMAGE.findall(markdown)
            if not (src.startswith("data:") or src.startswith(("http://", "https://")))]
