"""Views of a stored study: trial lines, ``status``, the report and its plots, ``export``, the dashboard.

A view reads ``FeasibilityStudy.views()`` (typed records) and never writes a trial.
"""
