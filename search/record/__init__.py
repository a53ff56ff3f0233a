"""The trial record: what a trial is and measured, typed, and its one mapping to Optuna's user attributes.

Every other room reads trials through :class:`~gpupair_search.search.record.trial_record.TrialRecord`; Optuna's
private API is used only in :mod:`.optuna_adapter`.
"""
