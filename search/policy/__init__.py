"""The search policy: pure functions of stored trials that decide verdicts and the next batch sizes to try.

Nothing here touches storage or devices, so a resumed study, a second worker and ``plan`` all decide alike.
"""
