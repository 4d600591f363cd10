"""Analysis of studies: the playbook's checks, plots, seed replicates, comparisons and reports.

The `kp.Study` methods (`check`, `plot_*`, `replicate`, `export`) and
`kp.compare` are the usual entry points; this package holds their parts:

    checks       Finding, run_checks and the thresholds (named constants)
    plot_data    pure functions: study -> the data each plot shows
    plots        thin matplotlib renderers of that data
    replicates   seed replicates of the best trials (replicates.json)
    compare      kp.compare: per scientific value, gap vs seed noise
    report       export: report.html, summary.md, CSV and JSON files
"""

from kplaybook.analysis.compare import Comparison
from kplaybook.analysis.compare import compare
from kplaybook.findings import Finding

__all__ = ["Comparison", "Finding", "compare"]
