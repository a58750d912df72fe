"""The study report: tables beside the published numbers, experiment comparison, figures.

Entry point: :func:`build_report` (called by ``pipeline/report.py``).
"""

from __future__ import annotations

from mtunet.report.report import ReportConfig, build_report

__all__ = ["ReportConfig", "build_report"]
