"""The incident logic, pure (no I/O, no clocks, no drawing).

One module per incident type in `incidents/`, registered in `registry`; the shared machinery (zones, stillness,
dwell, lifecycle, the littering rule) sits next to it.
"""
