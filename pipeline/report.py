"""Stage `report`: reports/report.md, figures and tables from every dataset's results.

Usage: `python pipeline/report.py`.
"""

from __future__ import annotations

from mtunet.stages import load, run_report

if __name__ == "__main__":
    print(run_report(load()))
