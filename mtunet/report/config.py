"""The ``report`` section of ``params.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mtunet.config import check, from_dict, to_dict


@dataclass(frozen=True)
class ReportConfig:
    """``report`` section of ``params.yaml``.

    Attributes:
        title: Heading of ``report.md``.
        max_qualitative: Slices shown in each qualitative figure.
        dpi: Resolution of the PNG figures.
        template: A Jinja2 template of your own for ``report.md`` (a path relative to the
            folder of ``params.yaml``, or absolute); None: the packaged
            ``mtunet/report/templates/report.md.j2``.
    """

    title: str = "MT-UNet: a reproducible study on Synapse and ACDC"
    max_qualitative: int = 4
    dpi: int = 110
    template: str | None = None

    def __post_init__(self) -> None:
        check(self.max_qualitative >= 1, "report.max_qualitative", "must be >= 1")
        check(20 <= self.dpi <= 600, "report.dpi", "must lie in [20, 600]")
        check(
            self.template is None or bool(self.template.strip()),
            "report.template",
            "must be a template file or null (the packaged template)",
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "report") -> ReportConfig:
        """Build from a params section (unknown keys / wrong types raise ValueError)."""
        return from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return to_dict(self)
