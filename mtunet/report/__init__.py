"""The study report: comparison tables, differences to the reference, figures, protocol.

Nothing is imported here, so ``mtunet.report.stats`` (used by the compare stage) loads
without matplotlib or pandas. Entry point: ``from mtunet.report.report import build_report``
(called by ``pipeline/report.py`` through :func:`mtunet.stages.run_report`).
"""
