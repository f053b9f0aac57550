"""The demo report: tables beside the published numbers, figures and curves (``monai_xattn.demo``'s last step)."""

from monai_xattn.report.builder import Table, collect_tables, write_report

__all__ = ["Table", "collect_tables", "write_report"]
