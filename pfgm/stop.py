"""SIGTERM / Ctrl-C noted during a training run's start-up, before the loop installs its own handlers.

No imports: `pfgm.main` installs `request` before it imports torch, so a signal at any moment of the
start-up makes the run save and exit cleanly (status 0) at its first step instead of dying (143).
"""
REQUESTED = []


def request(signum, frame):
    REQUESTED.append(signum)
