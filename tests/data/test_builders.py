"""Each dataset builder on a tiny fake folder in its real layout, built and read back via TFDS.

All fake folders are written and built once per module (a few 32x32 images each); the tests
then read every split back through `as_data_source` and compare pixels with the files on disk.
"""

from __future__ import annotations

import hashlib
import pathlib
import tempfile

import numpy as np
import PIL.Image
import pytest

from unires_jax.data import builders, sources
from unires_jax.data.builders import diverse_photos, folders, oid_motion

SIZE = 32

# dataset -> split -> [(LQ path, HQ path)] for paired sets, relative to the manual folder.
PAIRED = {
    "gopro": {
        "train": [
            (
                "train/GOPR0372_07_00/blur/000047.png",
                "train/GOPR0372_07_00/sharp/000047.png",
            ),
            (
                "train/GOPR0372_07_00/blur/000048.png",
                "train/GOPR0372_07_00/sharp/000048.png",
            ),
            (
                "train/GOPR0374_11_00/blur/000001.png",
                "train/GOPR0374_11_00/sharp/000001.png",
            ),
        ],
        "test": [
            (
                "test/GOPR0384_11_00/blur/000001.png",
                "test/GOPR0384_11_00/sharp/000001.png",
            )
        ],
    },
    "dpdd": {
        "train": [("train_c/source/1P0A1001.png", "train_c/target/1P0A1001.png")],
        "validation": [("val_c/source/1P0A1500.png", "val_c/target/1P0A1500.png")],
        "test": [("test_c/source/1P0A2000.png", "test_c/target/1P0A2000.png")],
    },
    "sidd": {
        "train": [
            (
                "Data/0001_001_S6_00100_00060_3200_L/NOISY_SRGB_010.PNG",
                "Data/0001_001_S6_00100_00060_3200_L/GT_SRGB_010.PNG",
            ),
            (
                "Data/0001_001_S6_00100_00060_3200_L/NOISY_SRGB_011.PNG",
                "Data/0001_001_S6_00100_00060_3200_L/GT_SRGB_011.PNG",
            ),
            (
                "Data/0002_001_S6_00100_00020_3200_N/NOISY_SRGB_010.PNG",
                "Data/0002_001_S6_00100_00020_3200_N/GT_SRGB_010.PNG",
            ),
        ],
    },
    "realsr": {
        "train": [
            ("Canon/Train/4/Canon_001_LR4.png", "Canon/Train/4/Canon_001_HR.png"),
            ("Nikon/Train/4/Nikon_001_LR4.png", "Nikon/Train/4/Nikon_001_HR.png"),
        ],
        "test": [("Canon/Test/4/Canon_050_LR4.png", "Canon/Test/4/Canon_050_HR.png")],
    },
    "drealsr": {
        "test": [
            (
                "x4/Test_x4/test_LR/DSC_1454_x4.png",
                "x4/Test_x4/test_HR/DSC_1454_x1.png",
            ),
            ("x4/Test_x4/test_LR/P1190_x4.png", "x4/Test_x4/test_HR/P1190_x1.png"),
        ],
    },
    "foundir": {
        "test": [
            ("test/01Blur/LQ/0001.png", "test/01Blur/GT/0001.png"),
            ("test/02Noise/LQ/0001.jpg", "test/02Noise/GT/0001.png"),
        ],
    },
    "rain100l": {
        "train": [
            ("RainTrainL/rain-1.png", "RainTrainL/norain-1.png"),
            ("RainTrainL/rain-2.png", "RainTrainL/norain-2.png"),
        ],
        "test": [("Rain100L/rain-001.png", "Rain100L/norain-001.png")],
    },
    "sots": {
        "outdoor": [
            ("outdoor/hazy/0001_0.8_0.2.jpg", "outdoor/gt/0001.png"),
            ("outdoor/hazy/0002_1_0.08.jpg", "outdoor/gt/0002.png"),
        ],
        "indoor": [
            ("indoor/hazy/1400_1.png", "indoor/gt/1400.png"),
            ("indoor/hazy/1400_2.png", "indoor/gt/1400.png"),
        ],
    },
    "lol": {
        "train": [("our485/low/2.png", "our485/high/2.png")],
        "test": [("eval15/low/1.png", "eval15/high/1.png")],
    },
}

# dataset -> split -> [image path] for sets of clean images.
CLEAN = {
    "df2k": {
        "train": [
            "DIV2K_train_HR/0001.png",
            "DIV2K_train_HR/0002.png",
            "Flickr2K/Flickr2K_HR/000001.png",
        ],
        "validation": ["DIV2K_valid_HR/0801.png"],
    },
    "lsdir": {"train": ["train/0001000/0000001.png", "train/0002000/0001001.png"]},
    "bsd400_wed": {"train": ["BSD400/test_001.jpg", "WED/00001.bmp"]},
    "bsd68": {"test": ["CBSD68/0000.png", "CBSD68/0001.png"]},
}

# Files of the real releases that the builders must ignore.
IGNORED = {
    "gopro": ["train/GOPR0372_07_00/blur_gamma/000047.png"],
    "dpdd": ["train_l/source/1P0A1001.png"],
}

# A corrupt file per dataset kind, skipped and counted (paired: its pair goes with it).
CORRUPT = {
    "gopro": (
        "train/GOPR0380_11_00/blur/000002.png",
        "train/GOPR0380_11_00/sharp/000002.png",
    ),
    "df2k": "DIV2K_train_HR/0003.png",
}


def _pixels(rel: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(rel.encode()).digest()[:4], "little")
    size = (
        SIZE // 4 if "/test_LR/" in rel else SIZE
    )  # DRealSR LR images are x4 smaller.
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write(root: pathlib.Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(_pixels(rel)).save(
        path, format=PIL.Image.registered_extensions()[path.suffix.lower()]
    )


def _write_corrupt(root: pathlib.Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(root, rel)
    path.write_bytes(path.read_bytes()[:60])  # Truncated inside the image data.


def _degrade_for_test(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap stand-in for the motion degradation: a seeded brightness shift."""
    return np.clip(image * 0.5 + rng.uniform(0.0, 0.5), 0.0, 1.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Writes every fake manual folder and builds every dataset once: name -> (root, report)."""
    base = tmp_path_factory.mktemp("builders")
    data_dir = base / "data"
    results = {}
    for name in {**PAIRED, **CLEAN}:
        root = base / "manual" / name
        for split in PAIRED.get(name, {}).values():
            for lq, hq in split:
                _write(root, lq)
                _write(root, hq)
        for split in CLEAN.get(name, {}).values():
            for rel in split:
                _write(root, rel)
        for rel in IGNORED.get(name, []):
            _write(root, rel)
        corrupt = CORRUPT.get(name)
        if isinstance(corrupt, tuple):
            _write_corrupt(root, corrupt[0])
            _write(root, corrupt[1])
        elif corrupt:
            _write_corrupt(root, corrupt)
        results[name] = (root, builders.build(name, manual_dir=root, data_dir=data_dir))
    # OID-Motion: photos in sub-folders, LQ synthesised by the given degradation.
    root = base / "manual" / "oid_motion"
    for rel in ("train_0/000a1249af2bc5f0.jpg", "train_1/00c1e2f4b7b1a6de.png"):
        _write(root, rel)
    _write_corrupt(root, "train_1/ffff.jpg")
    results["oid_motion"] = (
        root,
        builders.build(
            "oid_motion", manual_dir=root, data_dir=data_dir, degrade=_degrade_for_test
        ),
    )
    return data_dir, results


def _expected_sizes(name: str) -> dict[str, int]:
    table = PAIRED.get(name) or CLEAN[name]
    return {split: len(items) for split, items in table.items()}


@pytest.mark.parametrize("name", sorted({**PAIRED, **CLEAN}))
def test_builder_reads_back_every_pair_from_its_real_layout(built, name):
    data_dir, results = built
    root, report = results[name]
    assert report.splits == _expected_sizes(name)
    for split, items in (PAIRED.get(name) or CLEAN[name]).items():
        source = builders.open_built(name, split, data_dir=data_dir)
        assert len(source) == len(items)
        partner = dict(items) if name in PAIRED else {rel: rel for rel in items}
        seen = set()
        for i in range(len(source)):
            record = source[i]
            rel = record["name"].decode()
            seen.add(rel)
            if name in PAIRED:
                np.testing.assert_array_equal(
                    record["lq"], sources.decode_image(root / rel)
                )
            np.testing.assert_array_equal(
                record["hq"], sources.decode_image(root / partner[rel])
            )
            assert record["hq"].dtype == np.uint8 and record["hq"].shape[-1] == 3
        assert seen == set(partner)


def test_corrupt_files_are_skipped_counted_and_kept_in_metadata(built):
    data_dir, results = built
    for name, corrupt in CORRUPT.items():
        _, report = results[name]
        bad = corrupt[0] if isinstance(corrupt, tuple) else corrupt
        assert len(report.skipped) == 1
        assert report.skipped[0][0].endswith(bad)
        assert "cannot decode" in report.skipped[0][1]
        assert "skipped 1 corrupt" in report.summary()
        # The report survives with the dataset: a fresh builder reads it from the metadata.
        stored = builders.get_builder(name, data_dir=data_dir).info.metadata["skipped"]
        assert [tuple(s) for s in stored] == report.skipped
    assert results["lol"][1].skipped == []


def test_folder_group_is_recorded(built):
    data_dir, _ = built
    source = builders.open_built("foundir", "test", data_dir=data_dir)
    groups = sorted(source[i]["group"].decode() for i in range(len(source)))
    assert groups == ["test/01Blur", "test/02Noise"]


def test_oid_motion_pairs_are_deterministic_per_file_name(built):
    data_dir, results = built
    root, report = results["oid_motion"]
    assert report.splits == {"train": 2}
    assert len(report.skipped) == 1 and report.skipped[0][0].endswith("ffff.jpg")
    source = builders.open_built("oid_motion", "train", data_dir=data_dir)
    for i in range(len(source)):
        record = source[i]
        rel = record["name"].decode()
        hq = sources.decode_image(root / rel)
        np.testing.assert_array_equal(record["hq"], hq)
        expected = oid_motion.synthesise(hq, pathlib.Path(rel).name, _degrade_for_test)
        np.testing.assert_array_equal(record["lq"], expected)
        assert not np.array_equal(record["lq"], record["hq"])
    # The seed depends on the file name only (stable across machines and folders).
    assert (
        oid_motion.seed_for("a.jpg")
        == oid_motion.seed_for("a.jpg")
        != oid_motion.seed_for("b.jpg")
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "gopro",
            [
                "train/<sequence>/blur/<frame>",
                "train/<sequence>/sharp/<frame>",
                "test/<sequence>",
            ],
        ),
        ("sidd", ["Data/<scene>/NOISY_SRGB_<id>", "Data/<scene>/GT_SRGB_<id>"]),
        ("df2k", ["DIV2K_train_HR/<name>", "Flickr2K/Flickr2K_HR/<name>"]),
        ("sots", ["outdoor/hazy/<id>_<airlight>_<beta>", "outdoor/gt/<id>"]),
        ("reside_ots", ["synthetic/<part>/<id>_<airlight>_<beta>", "original/<id>"]),
    ],
)
def test_missing_folder_error_lists_what_was_expected_and_where(
    tmp_path, name, expected
):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(builders.LayoutError) as info:
        builders.build(name, manual_dir=empty, data_dir=tmp_path / "data")
    message = str(info.value)
    assert str(empty) in message and "missing folder" in message
    for line in expected:
        assert line in message
    # No manual folder at all: the error carries the download instructions.
    with pytest.raises(
        builders.LayoutError, match="needs the manually downloaded data"
    ):
        builders.build(name, manual_dir=None, data_dir=tmp_path / "data")


def test_wrong_folder_names_the_unmatched_files_and_folders(tmp_path):
    root = tmp_path / "dpdd"
    _write(root, "train_c/input/a.png")  # `input` instead of `source`.
    _write(root, "train_c/target/a.png")
    _write(root, "test_c/source/b.png")  # no partner in target/.
    _write(root, "test_c/target/c.png")
    with pytest.raises(builders.LayoutError) as info:
        builders.build("dpdd", manual_dir=root, data_dir=tmp_path / "data")
    message = str(info.value)
    assert "train_c/source: no image files matching 'source/<name>'" in message
    assert (
        "1 LQ file(s) have no partner matching 'target/<name>', e.g. b.png" in message
    )
    assert (
        "1 HQ file(s) have no partner matching 'source/<name>', e.g. c.png" in message
    )
    assert "test_c/source/<name>" in message  # The full expected layout follows.


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="gopro"):
        builders.build("gopr0", manual_dir=tmp_path)


def test_open_built_explains_how_to_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="unires data build lol"):
        builders.open_built("lol", "train", data_dir=tmp_path)


def test_constructing_builders_leaves_no_stray_temporary_folders(tmp_path, monkeypatch):
    # TFDS's DatasetInfo.initialize_from_bucket makes a temp folder for GCS metadata that our
    # datasets never have; every builder goes through LocalDatasetInfo, which skips it.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for name, cls in builders.BUILDERS.items():
        builder = cls(data_dir=tmp_path / "data")
        assert isinstance(builder.info, folders.LocalDatasetInfo), name
    assert list(scratch.iterdir()) == []


def test_every_manual_builder_documents_its_layout():
    for name, cls in builders.BUILDERS.items():
        if name == "sample_photos":
            assert cls.MANUAL_DOWNLOAD_INSTRUCTIONS is None
            continue
        text = cls.MANUAL_DOWNLOAD_INSTRUCTIONS
        assert "Expected layout under the manual folder" in text, name
        for spec in getattr(cls, "LAYOUT", ()):
            assert f"{spec.group}/{spec.hq}" in text, name


# RESIDE OTS --------------------------------------------------------------------------------

# The official Train/Dehaze layout: hazy parts under synthetic/, clear images under original/.
_OTS_LISTED = {
    "synthetic/part1/0025_0.8_0.04.jpg": "original/0025.jpg",
    "synthetic/part1/0025_1_0.2.jpg": "original/0025.jpg",
    "synthetic/part2/0039_0.95_0.1.jpg": "original/0039.jpg",
}
_OTS_UNLISTED = {
    "synthetic/part1/0025_0.85_0.06.jpg": "original/0025.jpg",
    "synthetic/part2/0043_0.9_0.12.jpg": "original/0043.jpg",
}


def _ots_folder(root: pathlib.Path, listed: bool) -> None:
    for hazy, clear in {**_OTS_LISTED, **_OTS_UNLISTED}.items():
        _write(root, hazy)
        _write(root, clear)
    _write(root, "original/0050.jpg")  # A clear image no hazy one uses: ignored.
    if listed:
        # As the official list: one path per line; repeated and blank lines are tolerated.
        lines = [*_OTS_LISTED, "", next(iter(_OTS_LISTED))]
        (root / "hazy_outside.txt").write_text("\n".join(lines) + "\n")


def _read_back(name: str, data_dir: pathlib.Path) -> dict[str, dict]:
    source = builders.open_built(name, "train", data_dir=data_dir)
    return {source[i]["name"].decode(): source[i] for i in range(len(source))}


@pytest.mark.parametrize("listed", [True, False])
def test_reside_ots_builds_the_listed_pairs_with_their_clear_images(tmp_path, listed):
    root = tmp_path / "Dehaze"
    _ots_folder(root, listed)
    report = builders.build("reside_ots", manual_dir=root, data_dir=tmp_path / "data")
    expected = _OTS_LISTED if listed else {**_OTS_LISTED, **_OTS_UNLISTED}
    assert report.splits == {"train": len(expected)}
    records = _read_back("reside_ots", tmp_path / "data")
    assert set(records) == set(expected)
    for hazy, clear in expected.items():
        record = records[hazy]
        np.testing.assert_array_equal(record["lq"], sources.decode_image(root / hazy))
        np.testing.assert_array_equal(record["hq"], sources.decode_image(root / clear))
        assert record["group"].decode() == hazy.rsplit("/", 1)[0]


def test_reside_ots_names_listed_files_that_are_missing_or_unpaired(tmp_path):
    root = tmp_path / "Dehaze"
    _ots_folder(root, listed=True)
    (root / "synthetic/part2/0039_0.95_0.1.jpg").unlink()
    (root / "original/0025.jpg").unlink()
    with pytest.raises(builders.LayoutError) as info:
        builders.build("reside_ots", manual_dir=root, data_dir=tmp_path / "data")
    message = str(info.value)
    assert "1 listed hazy file(s) not found" in message
    assert "synthetic/part2/0039_0.95_0.1.jpg" in message
    assert "2 hazy file(s) have no clear image" in message
    assert "synthetic/part1/0025_0.8_0.04.jpg" in message
    assert "Expected under" in message and "original/<id>.jpg" in message
    # A list naming nothing builds nothing: an error, not an empty dataset.
    (root / "hazy_outside.txt").write_text("\n")
    with pytest.raises(builders.LayoutError, match="lists no files"):
        builders.build("reside_ots", manual_dir=root, data_dir=tmp_path / "data")


# DiversePhotos -----------------------------------------------------------------------------


def test_diverse_photos_lists_match_the_paper_table():
    lists = diverse_photos.FILE_LISTS
    per_category = {c: sum(len(lists[s][c]) for s in lists) for c in lists["SPAQ"]}
    assert per_category == {
        "low_resolution": 40,
        "motion_blur": 40,
        "defocus_blur": 40,
        "noise": 40,
    }
    per_source = {s: sum(len(v) for v in lists[s].values()) for s in lists}
    assert per_source == {"SPAQ": 64, "KonIQ-10k": 40, "LIVE-itW": 56}
    for source, categories in lists.items():
        stems = [s for v in categories.values() for s in v]
        assert len(stems) == len(set(stems)), source
        assert all(s.isdigit() for s in stems), source


def _photo(path: pathlib.Path, shape: tuple[int, int], seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(pixels).save(path)
    return sources.decode_image(path)


def test_diverse_photos_crops_and_resizes_as_the_paper_says(tmp_path):
    root = tmp_path / "manual"
    spaq = _photo(root / "SPAQ/TestImage/00077.png", (601, 530), 0)
    koniq = _photo(root / "KonIQ-10k/1024x768/62480371.png", (768, 1024), 1)
    live = _photo(root / "LIVE-itW/Images/337.bmp", (500, 500), 2)
    _photo(root / "SPAQ/TestImage/99999.png", (600, 600), 3)  # Not listed: ignored.
    lists = {
        "SPAQ": {"noise": ("00077",)},
        "KonIQ-10k": {"motion_blur": ("62480371",)},
        "LIVE-itW": {"defocus_blur": ("337",)},
    }
    report = builders.build(
        "diverse_photos", manual_dir=root, data_dir=tmp_path / "data", file_lists=lists
    )
    assert report.splits == {"test": 3}
    source = builders.open_built("diverse_photos", "test", data_dir=tmp_path / "data")
    records = {source[i]["name"].decode(): source[i] for i in range(len(source))}
    np.testing.assert_array_equal(records["SPAQ/00077"]["lq"], spaq[44:556, 9:521])
    np.testing.assert_array_equal(
        records["KonIQ-10k/62480371"]["lq"], koniq[128:640, 256:768]
    )
    live_x1 = np.asarray(
        PIL.Image.fromarray(live).resize((512, 512), PIL.Image.Resampling.BICUBIC)
    )
    np.testing.assert_array_equal(records["LIVE-itW/337"]["lq"], live_x1)
    for record in records.values():
        assert record["lq"].shape == (512, 512, 3)
        np.testing.assert_array_equal(record["lq_x4"], record["lq"][192:320, 192:320])
    assert records["LIVE-itW/337"]["category"] == 2  # defocus_blur


def test_diverse_photos_missing_photos_are_listed(tmp_path):
    root = tmp_path / "manual"
    _photo(root / "SPAQ/00019.jpg", (600, 600), 0)
    (root / "KonIQ-10k").mkdir()
    with pytest.raises(builders.LayoutError) as info:
        builders.build("diverse_photos", manual_dir=root, data_dir=tmp_path / "data")
    message = str(info.value)
    assert "63 listed photo(s) not found: 00025" in message  # SPAQ: all but 00019.
    assert "KonIQ-10k: 40 listed photo(s) not found: 1755366250" in message
    assert f"missing folder {root / 'LIVE-itW'}" in message
    assert "LIVE-itW/<any sub-folders>/<id>.bmp" in message
