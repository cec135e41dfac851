"""The paper's selection: who qualifies, how many are drawn, uniformity, determinism, the studies table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chadavit.cli.main import main
from chadavit.idr import plan as plan_mod
from chadavit.idr.plan import Container, candidate_slots, make_plan, sample_study, studies_table_summary

from .conftest import QUALIFYING, N, make_client
from .emulator import IDREmulator


def test_selection_rules_study_unit(emu: IDREmulator) -> None:
    p = make_plan(make_client(emu), per_study=N, seed=0, unit="study")
    df = p.images
    assert set(df["study"]) == QUALIFYING
    assert df.groupby("study").size().to_dict() == {s: N for s in QUALIFYING}
    assert df["image_id"].is_unique
    where = emu.image_study()
    assert all(where[i].split("/")[0] == s for i, s in zip(df["image_id"], df["study"], strict=True))
    assert (df["sample_type"] == "cell").all()
    # the study one image short is considered but left out; the tissue study is never considered
    st = p.studies.set_index("group")
    assert not st.loc["idr0104-short", "qualified"] and st.loc["idr0104-short", "images_seen"] == N - 1
    assert "idr0105-tissue" not in st.index
    # two containers of one study are pooled; their imaging methods are both kept
    assert set(df[df.study == "idr0102-beta"]["container"]) <= {"idr0102-beta/experimentA", "idr0102-beta/experimentB"}
    t = p.totals()
    assert (t["studies"], t["groups"], t["groups_considered"], t["images"]) == (3, 3, 4, 3 * N)
    assert t["channels"] == int(df["size_c"].sum()) > t["images"]
    assert not df[["size_c", "size_x", "size_y", "pixel_type"]].isna().any().any()


def test_unit_container_is_default(emu: IDREmulator) -> None:
    p = make_plan(make_client(emu), per_study=N, seed=0)
    df = p.images
    containers = {"idr0101-alpha/screenA", "idr0102-beta/experimentA", "idr0103-gamma/screenA"}
    assert set(df["group"]) == set(df["container"]) == containers and set(df["study"]) == QUALIFYING
    assert df.groupby("container").size().to_dict() == {c: N for c in containers}
    st = p.studies.set_index("group")
    b = st.loc["idr0102-beta/experimentB"]
    assert not b["qualified"] and b["images_seen"] == 2
    assert (st["unit"] == "container").all() and len(st) == 5
    with pytest.raises(ValueError, match="unit"):
        make_plan(make_client(emu), per_study=N, unit="plate")


def test_seeded_and_deterministic(emu: IDREmulator) -> None:
    c = make_client(emu)
    a = make_plan(c, per_study=N, seed=3).images
    b = make_plan(c, per_study=N, seed=3).images
    pd.testing.assert_frame_equal(a, b)
    others = [set(make_plan(c, per_study=N, seed=s).images["image_id"]) for s in (4, 5)]
    assert any(o != set(a["image_id"]) for o in others)


class _FakePlateClient:
    """One plate of 6 wells x 2 fields with 3 holes (9 images) without HTTP, for many draws."""

    wells = [[1, 2], [3, None], [4, 5], [None, 6], [7, None], [8, 9]]

    def screen_plates(self, screen_id: int) -> list[dict]:
        return [{"@id": 1}]

    def plate_layout(self, plate_id: int) -> tuple[int, int]:
        return len(self.wells), 2

    def plate_wells(self, plate_id: int, offset: int, limit: int) -> list[dict]:
        return [{"WellSamples": [{"Image": {"@id": i, "Pixels": {"SizeC": 1}}} if i else {} for i in w]}
                for w in self.wells[offset:offset + limit]]


def test_every_image_equally_likely() -> None:
    client = _FakePlateClient()
    cont = Container("screen", 1, "idr0999-fake/screenA", 1, {"Sample Type": "cell"})
    counts: Counter[int] = Counter()
    runs = 3000
    for seed in range(runs):
        r = sample_study(client, "idr0999-fake", [cont], 3, seed, workers=1)  # type: ignore[arg-type]
        ids = [row["image_id"] for row in r.sample]
        assert len(set(ids)) == 3
        counts.update(ids)
    expected = runs * 3 / 9
    sigma = np.sqrt(runs * (1 / 3) * (2 / 3))
    assert set(counts) == set(range(1, 10))
    assert all(abs(v - expected) < 5 * sigma for v in counts.values()), counts
    # more than the study holds: exhausted slots -> left out with the exact count
    r = sample_study(client, "idr0999-fake", [cont], 10, 0, workers=1)  # type: ignore[arg-type]
    assert not r.qualified and r.images_seen == 9 and r.slots == 12


def test_lazy_candidates_for_huge_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_mod, "PERMUTE_BELOW", 0)
    gen = candidate_slots(np.random.default_rng(0), 50)
    got = [next(gen) for _ in range(50)]
    assert sorted(got) == list(range(50))
    big = candidate_slots(np.random.default_rng(1), 8_000_000)
    first = [next(big) for _ in range(2000)]
    assert len(set(first)) == 2000 and 3_000_000 < np.mean(first) < 5_000_000


def test_studies_table_bundled_numbers() -> None:
    s = studies_table_summary(per_study=1300)
    assert (s["containers_cell"], s["studies_cell"], s["images_cell"]) == (152, 87, 8_097_750)
    assert (s["containers_qualifying"], s["studies_qualifying"]) == (89, 61)
    assert s["study_sample_images"] == 61 * 1300
    assert studies_table_summary(per_study=1)["studies_qualifying"] == 87
    # up to release prod119 (2023-10-09) the Cell section holds exactly the paper's 8,050,408 images
    old = studies_table_summary(per_study=1300, released_by="prod119")
    assert (old["images_cell"], old["containers_cell"], old["studies_cell"]) == (8_050_408, 140, 82)
    assert (old["containers_qualifying"], old["studies_qualifying"]) == (84, 58)
    with pytest.raises(ValueError, match="release"):
        studies_table_summary(released_by="v1")


def test_bundled_table_is_the_shared_one(shared_dir: Path) -> None:
    shared = shared_dir / "data" / "idr_api_fixtures" / "idr_studies.tsv"
    assert plan_mod.BUNDLED_STUDIES.read_bytes() == shared.read_bytes()
    assert (plan_mod.BUNDLED_STUDIES.parent / "NOTICE").read_text().count("CC BY 4.0") >= 1


def test_cli_plan_online_and_offline(emu: IDREmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.csv"
    rc = main(["idr", "plan", "--server", emu.url, "--per-study", str(N), "--seed", "1", "--out", str(out),
               "--timeout", "0.5", "--backoff", "0.01"])
    text = capsys.readouterr().out
    assert rc == 0 and "qualifying containers: 3 of 5" in text and f"images: {3 * N}" in text
    assert "imaging methods: 3" in text and "left out (fewer images than --per-study): 2" in text
    df = pd.read_csv(out)
    assert len(df) == 3 * N and (tmp_path / "plan_studies.csv").is_file()
    assert main(["idr", "plan", "--studies-table", "--per-study", "1300", "--out", str(tmp_path / "cell.csv")]) == 0
    text = capsys.readouterr().out
    cell = pd.read_csv(tmp_path / "cell.csv")
    assert len(cell) == 152 and cell["container_qualifies"].sum() == 89 and cell["images"].sum() == 8_097_750
    assert cell[cell.study_qualifies]["study"].nunique() == 61
    assert "containers with >= 1300 images: 89" in text and "studies with >= 1300 images: 61" in text
