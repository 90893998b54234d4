"""The incident logic, pure (no I/O, no clocks, no drawing).

One module per incident type in `incidents/`, registered in `registry`; the shared machinery (zones, stillness,
dwell, lifecycle, the littering rule, the plausibility filter that keeps street furniture from becoming a case,
the owner memory for left objects) sits next to it; `replay` runs recorded observations through the rules.
"""
