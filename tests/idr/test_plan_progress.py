"""Issue 22 item 20: `idr plan` printed nothing for 73 s while it listed IDR's containers; it now says what
it is doing before each long step."""

from __future__ import annotations

import pytest

from chadavit.cli.main import main

from .emulator import IDREmulator


def test_plan_says_what_it_is_doing(emu: IDREmulator, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["idr", "plan", "--server", emu.url, "--per-study", "5", "--timeout", "0.5", "--backoff", "0.01",
               "--out", str(tmp_path / "plan.csv")])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"listing the screens and projects of {emu.url}" in err
    assert "non-empty containers" in err and "with Sample Type cell; sampling each" in err
    assert err.index("listing the screens") < err.index("sampling each")
