"""The study engine: inputs and the stored definition, Optuna storage, queued trials, and who runs them.

A trial's pair goes to an executor (one device, or packed on one card); its result comes back as a
:class:`~gpupair_search.search.record.trial_record.TrialRecord`.
"""
