"""Progress where stderr is not a terminal: log lines (count, NFE, elapsed, ETA) at most every so often;
the ETA of the training log line."""
import logging

import pytest
import torch

from pfgm import run_utils, sampling


class Records(logging.Handler):
    """The pfgm logger's records, caught by a handler of its own: caplog's handlers are left on the logger by
    earlier tests that build a Trainer, which would count each record more than once."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def pfgm_records():
    log = logging.getLogger(run_utils.LOGGER_NAME)
    handler, level = Records(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_log_progress_lines_have_count_postfix_elapsed_and_eta(monkeypatch, pfgm_records):
    clock = Clock()
    monkeypatch.setattr(run_utils.time, "time", clock)
    bar = run_utils.progress(total=1000, desc="sample ckpt 5", unit="sample", log_every=30)
    assert isinstance(bar, run_utils.LogProgress)  # pytest's captured stderr is not a terminal
    with bar:
        clock.now += 10
        bar.update(100)  # before log_every seconds: quiet
        assert not pfgm_records.records
        clock.now += 30
        bar.set_postfix(nfe=68)
        bar.update(150)
    (record,) = pfgm_records.records
    assert record.getMessage() == "sample ckpt 5: 250/1000 sample, nfe 68, 40s elapsed, ETA 2m00s"


def test_progress_is_a_tqdm_bar_when_asked_for_none_or_disabled():
    assert not isinstance(run_utils.progress(total=3, log_every=0), run_utils.LogProgress)
    assert not isinstance(run_utils.progress(total=3, disable=True), run_utils.LogProgress)


def test_a_long_ode_solve_logs_its_nfe(monkeypatch, pfgm_records):
    clock = Clock()
    monkeypatch.setattr(run_utils.time, "time", clock)
    monkeypatch.setattr(run_utils, "PROGRESS_LOG_EVERY", 5.0)

    def drift(x, t):
        clock.now += 1.0  # one second per evaluation
        return -x

    sampling.odeint(drift, torch.ones(3, 2), 0.0, 1.0, solver="euler", steps=20)
    lines = [r.getMessage() for r in pfgm_records.records]
    assert lines == ["ODE (euler): 25%, nfe 6, 5s elapsed, ETA 15s", "ODE (euler): 50%, nfe 11, 10s elapsed, ETA 10s",
                     "ODE (euler): 75%, nfe 16, 15s elapsed, ETA 5s"]


def test_duration_and_eta_formats():
    assert [run_utils.format_duration(s) for s in (0, 42.4, 185, 3725, float("nan"))] == \
        ["0s", "42s", "3m05s", "1h02m", "?"]
    rate = run_utils.Rate(0)
    assert rate.eta(0, 10) == "?"
    rate.start -= 10.0
    rate.first_time -= 10.0
    assert 9.9 < rate(100) < 10.1 and rate.eta(100, 1100) in ("1m39s", "1m40s", "1m41s")
    rate.first_time -= 10.0  # 100 steps in 20 s since the start: the ETA uses that mean rate
    assert rate.eta(100, 1100) in ("3m19s", "3m20s", "3m21s")
