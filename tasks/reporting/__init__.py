"""What people read: a version's plots and figures, report.md/html, images as data URIs.
May import: core, distribution, forecaster, evaluation."""
