"""The benchmark suite behind ``ir-robot bench`` (installed with the package so
every install can run it). Each area module exposes ``run(quick=False) -> dict``
returning a flat mapping of metric name -> number (or string).
"""
