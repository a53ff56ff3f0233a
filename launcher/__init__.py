"""Start one foreground/background pair on one device, measure it, classify it, write its results.

Data flows one way: settings file -> :class:`PairSpec` -> :func:`run_pair` -> :class:`PairResult`.
"""
