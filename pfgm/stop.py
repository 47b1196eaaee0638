"""SIGTERM / Ctrl-C noted during a training run's start-up, before the loop installs its own handlers.

Only the standard library's signal and os: `pfgm.main` installs `request` before it imports torch, so a
signal at any moment of the start-up makes the run save and exit cleanly (status 0) at its first step
instead of dying (143). A second signal ends the process at once, as without the handler: a start-up
that does not end (a huge or looping data folder) stays interruptible.
"""
import os
import signal

REQUESTED = []


def request(signum, frame):
    REQUESTED.append(signum)
    if len(REQUESTED) > 1:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
