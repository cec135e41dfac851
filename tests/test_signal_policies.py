"""The two signal policies of chadavit.signals: SIGTERM as Ctrl-C, and a stop request checked between steps."""

from __future__ import annotations

import os
import signal

import pytest

from chadavit.signals import StopRequest, sigterm_as_interrupt


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_request_records_the_first_signal_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested() and stop.name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before
