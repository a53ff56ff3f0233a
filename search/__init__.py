"""The study on Optuna, in five rooms; data flows down this list, and each room imports only those above it.

- :mod:`.record`: the one typed trial record (``TrialRecord``) and its mapping to Optuna's storage.
- :mod:`.policy`: what to run next and what a result means: verdicts, batch-size extension, the planner.
- :mod:`.engine`: the study itself: its inputs and definition, storage, queued trials, executors, packing.
- :mod:`.views`: every reading of a stored study: console lines, status, report and plots, export, dashboard.
- :mod:`.cli`: the ``gpupair-search`` commands and their options, the study's run loop and Slurm.
"""
