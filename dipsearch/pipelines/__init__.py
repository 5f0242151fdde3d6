"""The commands' pipelines over the layers below: restore (restore.py, and choosers.py: how it picks an
architecture), reproduce (reproduce.py, reproduce_rows.py: the published table) and the HTML report of
any run folder (report.py)."""
