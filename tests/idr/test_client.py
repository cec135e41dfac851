"""IDR client against the emulator: paging, annotations, metadata, pixels, retries and their limits."""

from __future__ import annotations

import numpy as np
import pytest

from chadavit.data.idr_client import IDRClient, IDRError, IDRNotFound, RetryPolicy, decode_png_gray

from .conftest import fast_policy, make_client
from .emulator import IDREmulator, render


def test_paging_follows_total_count(emu: IDREmulator) -> None:
    c = make_client(emu)
    screens = c.screens()
    projects = c.projects()
    assert [s["Name"] for s in screens] == [v["name"] for _, v in sorted(emu.world.screens.items())]
    assert len(projects) == len(emu.world.projects) == 4
    pages = [p for p, _ in emu.log if p == "/api/v0/m/projects/"]
    assert len(pages) == 2  # maxLimit 3 -> two pages for four projects


def test_items_span_several_pages(emu: IDREmulator) -> None:
    c = make_client(emu)
    pid = next(k for k, v in emu.world.projects.items() if v["name"] == "idr0105-tissue/experimentA")
    did = emu.world.projects[pid]["datasets"][0]
    got = [d["@id"] for d in c.dataset_images(did, 1, 6)]
    assert got == emu.world.datasets[did]["images"][1:7]


def test_annotations_imgdata_and_user_agent(emu: IDREmulator) -> None:
    c = make_client(emu)
    sid = next(iter(emu.world.screens))
    ann = c.map_annotations("screen", sid)
    assert ann["Sample Type"] == "cell" and ann["Imaging Method"] == "fluorescence microscopy"
    pids = sorted(emu.world.projects)
    many = c.map_annotations_many("project", pids, batch=3)
    assert [many[p]["Sample Type"] for p in pids] == ["cell", "cell", "tissue", "cell"]
    assert many[pids[1]]["Imaging Method"] == "widefield microscopy"
    assert sum(p == "/webclient/api/annotations/" for p, _ in emu.log) == 1 + 2
    img = next(iter(emu.world.images.values()))
    meta = c.img_data(img.id)
    assert (meta.size_c, meta.size_y, meta.size_x) == (img.c, img.data.shape[2], img.data.shape[3])
    assert meta.channel_labels == img.labels and meta.pixel_type == "uint16"
    assert all("chadavit" in ua for ua in emu.user_agents)


def test_render_channel_is_lossless_8bit(emu: IDREmulator) -> None:
    c = make_client(emu)
    img = next(i for i in emu.world.images.values() if i.c >= 2)
    plane = c.render_channel(img.id, 0, 0, 1, img.window(1))
    assert plane.dtype == np.uint8
    np.testing.assert_array_equal(plane, render(img.data[1, 0], *img.window(1)))


def test_zarr_plane_is_raw_and_middle_z(emu: IDREmulator) -> None:
    c = make_client(emu)
    img = next(i for i in emu.world.images.values() if i.zarr and i.data.shape[1] == 3)
    got = c.zarr_plane(c.zarr_image_url(img.id, "idr0103-gamma"), 1, 0)
    np.testing.assert_array_equal(got, img.data[:, 1])
    assert got.dtype == np.uint16
    # an image without a Zarr copy: 404 -> None (the builder falls back to renders)
    other = next(i for i in emu.world.images.values() if not i.zarr)
    assert c.zarr_plane(f"{emu.url}/zarr/v0.1/{other.id}.zarr", 0, 0) is None


@pytest.mark.parametrize("fault", ["500", "503", "504", "429", "truncated", "corrupt", "reset", "timeout"])
def test_transient_faults_are_retried(emu: IDREmulator, fault: str) -> None:
    c = make_client(emu)
    img = next(iter(emu.world.images.values()))
    emu.inject(f"/webgateway/render_image/{img.id}/", [fault, fault])
    plane = c.render_channel(img.id, 0, 0, 0, img.window(0))
    np.testing.assert_array_equal(plane, render(img.data[0, 0], *img.window(0)))
    assert c.retries_made == 2
    emu.inject(f"/webclient/imgData/{img.id}/", [fault])
    assert c.img_data(img.id).image_id == img.id
    assert not emu.errors


def test_retry_after_and_backoff_are_honoured(emu: IDREmulator) -> None:
    delays: list[float] = []
    c = make_client(emu, policy=RetryPolicy(retries=4, backoff=0.5, max_backoff=3.0, timeout=1.0, jitter=0.0),
                    sleep=delays.append)
    img = next(iter(emu.world.images.values()))
    emu.retry_after = "7"
    emu.inject(f"/webclient/imgData/{img.id}/", ["500", "500", "429", "500"])
    c.img_data(img.id)
    assert delays == [0.5, 1.0, 7.0, 3.0]  # doubling, Retry-After wins, capped at max_backoff


def test_retries_are_bounded_and_404_is_final(emu: IDREmulator) -> None:
    c = make_client(emu, policy=fast_policy(retries=2))
    img = next(iter(emu.world.images.values()))
    emu.inject(f"/webclient/imgData/{img.id}/", ["500"] * 5)
    with pytest.raises(IDRError, match="gave up after 3 attempts"):
        c.img_data(img.id)
    n = len(emu.log)
    with pytest.raises(IDRNotFound):
        c.img_data(999999)
    assert len(emu.log) == n + 1


def test_decode_rejects_garbage() -> None:
    from chadavit.data.idr_client import BadBody

    with pytest.raises(BadBody):
        decode_png_gray(b"\x89PNG\r\n\x1a\n" + bytes(40))


def test_default_server_is_public_idr() -> None:
    assert IDRClient().base_url == "https://idr.openmicroscopy.org"


def test_public_session_cookie_and_expiry(emu: IDREmulator) -> None:
    c = make_client(emu)
    sid = next(iter(emu.world.screens))
    assert c.map_annotations("screen", sid)["Sample Type"] == "cell"
    assert emu.log[0][0] == "/webclient/" and not any(o == "login-redirect" for _, o in emu.log)
    c._cookies.clear()  # the session expired: one redirect to login, a new cookie, then the answer
    assert c.map_annotations("screen", sid)["Sample Type"] == "cell"
    assert [o for _, o in emu.log].count("login-redirect") == 1
    assert [p for p, _ in emu.log].count("/webclient/") == 2
