"""What one gc removed (or would remove), per area, and its text for the console and the log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tasks.housekeeping.gc_plan import AREAS, Removal


@dataclass
class GcReport:
    """What one gc removed (or, dry run, would remove), per directory."""

    home: str
    dry_run: bool
    busy: bool = False
    removed: list[Removal] = field(default_factory=list)

    def freed(self) -> dict[str, dict[str, int]]:
        """Per area: items and bytes."""
        out = {area: {"items": 0, "bytes": 0} for area in AREAS}
        for r in self.removed:
            out[r.area]["items"] += 1
            out[r.area]["bytes"] += r.bytes
        return out

    def to_json(self) -> dict:
        return {"home": self.home, "dry_run": self.dry_run, "busy": self.busy,
                "freed": self.freed(), "total_bytes": sum(r.bytes for r in self.removed),
                "removed": [asdict(r) for r in self.removed]}


def format_size(n: int) -> str:
    """Bytes as B, KiB, MiB or GiB with one decimal."""
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def format_gc(report: GcReport) -> str:
    """What gc freed per directory, one line each, and the total."""
    if report.busy:
        return (f"{report.home}: a run is using this home; nothing removed "
                "(gc removes only while no run holds the home lock: run it again later)")
    verb = "would free" if report.dry_run else "freed"
    lines = [f"{report.home}: gc {verb}" + (" (dry run: nothing removed)" if report.dry_run
                                             else "")]
    freed = report.freed()
    for area in AREAS:
        items, size = freed[area]["items"], freed[area]["bytes"]
        if area == ".trash" and not items:
            continue
        lines.append(f"  {area + '/':<12} {items:>6} item(s) {format_size(size):>11}")
    total = sum(r.bytes for r in report.removed)
    lines.append(f"  {'total':<12} {len(report.removed):>6} item(s) {format_size(total):>11}")
    return "\n".join(lines)
