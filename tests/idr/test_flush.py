"""`idr build` publishes on a timer and on SIGTERM/SIGINT: a kill loses at most the last flush interval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chadavit.cli.main import main
from chadavit.data.dataset import open_dataset
from chadavit.idr.builder import build, image_key
from chadavit.idr.plan import make_plan, write_table

from .conftest import SIZE, N, make_client
from .emulator import IDREmulator
from .test_build import CLI_FAST, _assert_matches_emulator


def _command(emu: IDREmulator, out: Path, *extra: str) -> list[str]:
    """A `chadavit idr build` subprocess on a plan made here (planning in the child would only add seconds)."""
    plan = out.parent / "plan.parquet"
    if not plan.is_file():
        write_table(make_plan(make_client(emu), N, 0, "container", "cell", 2, progress=False).images, plan)
    return [sys.executable, "-m", "chadavit.cli.main", "idr", "build", "--server", emu.url, "--plan", str(plan),
            "--size", str(SIZE), "--workers", "1", "--out", str(out), "--zarr-base", emu.url + "/zarr/v0.1",
            "--zarr-studies", "idr0103", *CLI_FAST, *extra]


def _fetched(emu: IDREmulator) -> list[int]:
    """Image ids whose metadata the emulator served, in order (one imgData request per image fetch)."""
    with emu.lock:
        return [int(p.rstrip("/").rsplit("/", 1)[1]) for p, o in emu.log if p.startswith("/webclient/imgData/")
                and o == "ok"]


def _wait(condition, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and not condition():
        time.sleep(0.05)
    assert condition(), "timed out"


def test_time_based_flush_survives_sigkill_and_rerun_skips_finished(emu: IDREmulator, tmp_path: Path) -> None:
    """The issue's case scaled down: with --flush-every far above the images fetched, only the timer publishes."""
    out = tmp_path / "ds"
    cmd = _command(emu, out, "--flush-every", "1000", "--flush-seconds", "0.3")
    emu.delay = 0.1  # per render request: a slow server, so the kill comes mid-download
    proc = subprocess.Popen(cmd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: len(list((out / "manifest").glob("part-*.parquet"))) >= 2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ds = open_dataset(out)
    stored = set(ds.manifest["idr_image_id"].astype(int))
    assert 0 < len(stored) < 3 * N and ds.verify() == []  # finished images are readable and intact
    before = len(_fetched(emu))
    emu.delay = 0.0
    assert main(cmd[cmd.index("idr"):]) == 0  # the same command (same plan): only the missing images are fetched
    again = _fetched(emu)[before:]
    assert not stored & set(again), "the re-run fetched images that were already stored"
    assert len(_assert_matches_emulator(emu, out)) == 3 * N


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_publish_what_was_fetched(emu: IDREmulator, tmp_path: Path, sig: int,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The signal arrives in this process, as from Slurm or Ctrl-C, while `main` runs the build."""
    out = tmp_path / "ds"
    cmd = _command(emu, out, "--flush-every", "1000", "--flush-seconds", "1000")
    emu.delay = 0.2  # the 11+ images left take seconds: under load the signal still lands mid-build, not after it
    planned = len(_fetched(emu))

    def send() -> None:  # only once the build fetches: the SIGTERM handler is installed by then
        _wait(lambda: len(_fetched(emu)) >= planned + 4)  # at least three images finished, none published yet
        assert not list((out / "manifest").glob("part-*.parquet"))
        os.kill(os.getpid(), sig)

    sender = threading.Thread(target=send)
    sender.start()
    rc = main(cmd[cmd.index("idr"):])
    sender.join()
    assert rc == 130 and "re-run the same command" in capsys.readouterr().err
    ds = open_dataset(out)
    assert len(ds) >= 3 and ds.verify() == []
    assert {image_key(i) for i in _fetched(emu)[planned:]} >= set(ds.manifest["image_id"])


def test_flush_timer_in_process(emu: IDREmulator, tmp_path: Path) -> None:
    """A build whose images finish slowly publishes each within the interval, not at --flush-every."""
    plan = make_plan(make_client(emu), N, 0, "container", "cell", 2, progress=False).images.head(4)
    emu.delay = 0.2
    seen: list[int] = []

    def on_image(k: int) -> None:
        parts = list((tmp_path / "ds" / "manifest").glob("part-*.parquet"))
        seen.append(len(parts))

    res = build(plan, tmp_path / "ds", make_client(emu), size=SIZE, workers=1, progress=False, flush_every=1000,
                flush_seconds=0.05, on_image=on_image)
    assert res.written == 4 and len(open_dataset(tmp_path / "ds")) == 4
    assert seen[-1] >= 2  # parts were published while the build was running (time-based), not only at the end


def test_a_kill_at_any_moment_keeps_every_image_finished_more_than_the_interval_before(emu: IDREmulator,
                                                                                       tmp_path: Path) -> None:
    """Issue 22 item 7's acceptance, scaled down: a fault-injected build "killed" at several moments (the
    output folder copied as it stands, which is what a SIGKILL leaves) holds every image finished more
    than ``flush_seconds`` earlier, counted from the start of the run."""
    import shutil

    plan = make_plan(make_client(emu), N, 0, "container", "cell", 2, progress=False).images
    emu.fault_rate, emu.delay = 0.2, 0.05
    flush = 0.4
    finished: list[float] = []
    checks: list[tuple[int, int]] = []
    start = time.monotonic()

    def on_image(k: int) -> None:
        now = time.monotonic()
        finished.append(now)
        if k % 3 == 0:  # a kill now
            snap = tmp_path / f"kill{k}"
            shutil.copytree(tmp_path / "ds" / "manifest", snap / "manifest")  # parts first, then the planes
            shutil.copy(tmp_path / "ds" / "dataset.json", snap / "dataset.json")
            if (tmp_path / "ds" / "planes.zarr").exists():
                shutil.copytree(tmp_path / "ds" / "planes.zarr", snap / "planes.zarr")
            older = sum(t < now - flush for t in finished)
            checks.append((older, len(open_dataset(snap))))
            assert open_dataset(snap).verify() == []

    res = build(plan, tmp_path / "ds", make_client(emu), size=SIZE, workers=2, progress=False, flush_every=1000,
                flush_seconds=flush, on_image=on_image)
    assert res.written == len(plan) - len(res.failures) and len(checks) >= 3
    assert finished[0] - start > 0
    assert any(older for older, _ in checks) and all(kept >= older for older, kept in checks), checks
