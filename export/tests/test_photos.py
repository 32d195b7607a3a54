"""Photographs in the dataset: GCompris' Qt resources read, held-out pictures never trained, the
photographic views, recorded human speech, and the photo-memory metric with label matching."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualbyte_export import photos as P
from visualbyte_export.classes import select_classes
from visualbyte_export.data.recorded import recorded_speech_jobs
from visualbyte_export.photo_memory import ask_memory, photo_memory_report


def qt_resource(files: dict[str, bytes], compress: set[str]) -> bytes:
    """A version-2 Qt ``.rcc`` holding ``files`` in one folder ``d`` (the layout rcc writes)."""
    names, name_off = b"", {}
    for n in ["d", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    payload, data_off = b"", {}
    for n, raw in files.items():
        body = struct.pack(">I", len(raw)) + zlib.compress(raw) if n in compress else raw
        data_off[n] = len(payload)
        payload += struct.pack(">I", len(body)) + body

    def directory(name_at, count, first):
        return struct.pack(">IHII", name_at, 2, count, first) + bytes(8)

    def file(n):
        flags = 1 if n in compress else 0
        return struct.pack(">IHHHI", name_off[n], flags, 0, 0, data_off[n]) + bytes(8)

    tree = directory(0, 1, 1) + directory(name_off["d"], len(files), 2)
    tree += b"".join(file(n) for n in files)
    header = 20
    return (
        b"qres"
        + struct.pack(">IIII", 2, header, header + len(tree), header + len(tree) + len(payload))
        + tree
        + payload
        + names
    )


def test_a_qt_resource_gives_back_its_plain_and_zlib_compressed_files_by_path():
    files = {"cow.webp": b"moo" * 50, "fish12.webp": bytes(range(256))}
    got = P.read_rcc(qt_resource(files, compress={"cow.webp"}))
    assert got == {"d/cow.webp": files["cow.webp"], "d/fish12.webp": files["fish12.webp"]}


def test_a_file_that_is_not_a_qt_resource_is_refused():
    with pytest.raises(ValueError, match="qres"):
        P.read_rcc(b"\x89PNG\r\n\x1a\n" + bytes(40))


@pytest.fixture(scope="module")
def pictures():
    classes = select_classes(False, None)
    src = P.PhotoSources()
    return classes, src, src.all_pictures(classes)


def test_no_held_out_photo_or_clip_art_is_ever_a_training_row(pictures):
    classes, _, pics = pictures
    jobs = P.photo_jobs(pics, classes, views=3)
    trained = {j["ref"] for j in jobs["train_photo"]}
    held = {j["ref"] for j in jobs["photo_image"] + jobs["clipart_image"]}
    assert trained and held and not trained & held
    # The 'explore animals' photographs are all held out; every held-out photo is a photograph.
    explore = [p for p in pics if "explore_farm_animals" in p.ref]
    assert len(explore) >= 5 and all(p.held_out for p in explore)
    assert {j["source"] for j in jobs["photo_image"]} == {"photo"}
    assert len(jobs["train_photo"]) == 3 * sum(not p.held_out for p in pics)
    assert len({j["y"] for j in jobs["photo_image"]}) >= 15
    # A quarter of Tux Paint's photographs are held out; its cartoons only ever train.
    stamps = [p for p in pics if "/tuxpaint/" in p.ref]
    photos = [p for p in stamps if p.source == "photo"]
    assert len(photos) >= 80 and sum(p.held_out for p in photos) == len(photos) // 4
    assert any(p.source == "drawing" for p in stamps)
    assert not any(p.held_out for p in stamps if p.source == "drawing")


def stamp(folder, rel: str, description: str | None):
    png = folder / rel
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (8, 8)).save(png)
    if description is not None:
        png.with_suffix(".txt").write_text(f"{description}\nfr.utf8=Un tigre.\n", "utf-8")
    return png


def test_a_tux_paint_stamp_names_its_class_by_file_or_short_description(tmp_path):
    classes = select_classes(False, None)
    key = {
        rel: (c.key if c else None)
        for rel, desc in [
            ("animals/cats/tiger.png", None),
            ("animals/cats/tiger_sumatran.png", "A Sumatran tiger."),
            ("animals/birds/hen.png", "A brown hen."),
            ("animals/aquatic/sea_lion.png", "A sea lion."),
            ("vehicles/auto/beetle.png", "A VW Beetle."),
            ("space/planets/1_mercury.png", "Mercury, the planet closest to the sun."),
            ("household/gizmo.png", "A gizmo."),
        ]
        for c in [P.stamp_class(stamp(tmp_path, rel, desc), classes)]
    }
    assert key == {
        "animals/cats/tiger.png": "tiger",
        "animals/cats/tiger_sumatran.png": "tiger",
        "animals/birds/hen.png": "chicken",
        "animals/aquatic/sea_lion.png": None,
        "vehicles/auto/beetle.png": None,
        "space/planets/1_mercury.png": None,
        "household/gizmo.png": None,
    }


def test_tux_paint_cartoons_train_as_drawings_and_every_fourth_photo_is_held_out(tmp_path):
    classes = select_classes(False, None)
    for rel in ["cats/tiger.png", "cats/lion.png", "dogs/dog.png", "dogs/fox.png", "bear/bear.png"]:
        stamp(tmp_path / "animals", rel, None)
    stamp(tmp_path / "animals", "cats/cartoon/lion.png", "A happy lion.")
    stamp(tmp_path / "symbols", "alphabets/tiger.png", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    src = P.PhotoSources(rcc_dir=empty, clipart_dir=empty, stamps_dir=tmp_path)
    got = [(p.key, p.source, p.held_out, Path(p.ref).parent.name) for p in src.tuxpaint(classes)]
    assert got == [
        ("bear", "photo", False, "bear"),
        ("dog", "photo", False, "dogs"),
        ("fox", "photo", False, "dogs"),
        ("lion", "drawing", False, "cartoon"),
        ("lion", "photo", True, "cats"),
        ("tiger", "photo", False, "cats"),
    ]


def test_a_photo_view_is_a_camera_like_rgb_picture_the_same_for_the_same_seed(pictures):
    _, src, pics = pictures
    clip = next(p for p in pics if p.source == "clipart")
    img = src.load(clip.ref)
    assert P.is_cut_out(img)
    bgs = [src.load(b).convert("RGB") for b in src.backgrounds()[:3]]
    a = P.photo_view(img, np.random.default_rng(5), bgs)
    b = P.photo_view(img, np.random.default_rng(5), bgs)
    c = P.photo_view(img, np.random.default_rng(6), bgs)
    assert a.size == (160, 160) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.abs(np.asarray(a, np.int16) - np.asarray(c, np.int16)).mean() > 5
    plain = np.asarray(P.plain_view(img))
    assert plain.shape[2] == 3 and plain[0, 0].min() >= 250  # on white, as a memory holds it


def test_recorded_human_words_that_name_classes_are_found(pictures):
    classes = pictures[0]
    jobs = P.human_speech_jobs(classes, stamps=P.TUXPAINT)
    words = {s: {j["word"] for j in jobs if j["speaker"] == s} for s in ("ktuberling", "tuxpaint")}
    assert len(words["ktuberling"]) >= 15 and {"rocket", "train"} <= words["ktuberling"]
    assert len(words["tuxpaint"]) >= 20 and {"elephant", "tiger"} <= words["tuxpaint"]
    assert all(
        classes[j["y"]].en == j["word"] or j["word"] in classes[j["y"]].en_aliases for j in jobs
    )
    # Only English descriptions: ``tiger_desc_fr.ogg`` is French.
    assert all(j["file"].endswith(("_desc.ogg",)) for j in jobs if j["speaker"] == "tuxpaint")
    assert P.human_speech_jobs(classes) == [j for j in jobs if j["speaker"] == "ktuberling"]


def test_no_english_recording_is_ever_a_training_row(pictures):
    classes = pictures[0]
    trained = recorded_speech_jobs(classes, 1, 0, stamps=P.TUXPAINT)
    held = {j["file"] for j in P.human_speech_jobs(classes, stamps=P.TUXPAINT)}
    files = {j["file"] for j in trained}
    assert len(files) > 1000 and not files & held
    assert not any("/sounds/en/" in f or f.endswith("_desc.ogg") for f in files)
    assert {j["lang"] for j in trained} >= {"fr", "de", "ru"} and not any(
        j["lang"].startswith("en") for j in trained
    )
    assert {"tiger", "elephant", "camel"} <= {j["class"] for j in trained}


def test_a_recorded_word_is_decoded_and_augmented_into_audible_speech(tmp_path, pictures):
    from visualbyte_export.data.recorded import recorded_lines
    from visualbyte_export.wav import read_wav

    jobs = [j for j in recorded_speech_jobs(pictures[0], 2, 0) if j["class"] == "camel"][:2]
    lines = recorded_lines(jobs, tmp_path)
    heard = [read_wav(Path(line["path"])) for line in lines]
    for (x, rate), job in zip(heard, jobs, strict=True):
        assert rate == job["aug"]["rate"] and 0.3 < len(x) / rate < 10
        assert np.sqrt(np.mean(x**2)) > 1e-3  # speech, not silence
    assert not np.array_equal(heard[0][0][:1000], heard[1][0][:1000])


def _ogg(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_recorded_words_are_found_by_language_once_each_with_their_views(tmp_path):
    classes = select_classes(False, None)
    sounds, stamps = tmp_path / "sounds", tmp_path / "stamps"
    _ogg(sounds / "en" / "egypt_camel.ogg", b"english")
    _ogg(sounds / "de" / "egypt_camel.ogg", b"kamel")
    _ogg(sounds / "sr" / "egypt_camel.ogg", b"kamila")
    _ogg(sounds / "sr@latin" / "egypt_camel.ogg", b"kamila")  # the same recording again
    _ogg(sounds / "de" / "egypt_pyramid.ogg", b"no class")
    (stamps / "animals").mkdir(parents=True)
    (stamps / "animals" / "tiger.txt").write_text("A tiger.\n")
    for name in ("tiger_desc.ogg", "tiger_desc_fr.ogg", "tiger_desc_da.ogg.ogg", "tiger.ogg"):
        _ogg(stamps / "animals" / name, name.encode())
    jobs = recorded_speech_jobs(classes, 2, 0, sounds=sounds, stamps=stamps)
    found = sorted({(j["class"], j["lang"], j["speaker"]) for j in jobs})
    assert found == [
        ("camel", "de", "ktuberling"),
        ("camel", "sr", "ktuberling"),
        ("tiger", "fr", "tuxpaint"),
    ]
    assert len(jobs) == 6 and {j["engine"] for j in jobs} == {"recorded"}
    assert jobs[0]["aug"] != jobs[1]["aug"]  # each view its own augmentation
    assert jobs == recorded_speech_jobs(classes, 2, 0, sounds=sounds, stamps=stamps)
    with pytest.raises(P.PhotoSourceMissing, match="tuxpaint-stamps-default"):
        recorded_speech_jobs(classes, 1, 0, sounds=sounds, stamps=tmp_path / "nope")


def test_missing_photo_packages_are_named_in_the_error(tmp_path):
    with pytest.raises(P.PhotoSourceMissing, match="gcompris-qt-data"):
        P.PhotoSources(rcc_dir=tmp_path / "nope")


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_label_matching_answers_a_question_its_picture_misses_and_counts_wrong_answers():
    # Two pictures (classes 0 and 1). The question about class 1 is closest to picture 0, but
    # closer still to the label of class 1.
    g, gy = unit([[1, 0, 0], [0, 1, 0]]), np.array([0, 1])
    labels = unit([[1, 0, 0.1], [0, 0.2, 1], [1, 1, 1]])
    q, qy = unit([[0.8, 0.3, 0.9], [1, 0.05, 0], [0, 0, 1]]), np.array([1, 0, 2])
    r = ask_memory(q, qy, g, gy, labels, t=0.5)
    assert r["picture"]["n"] == 2  # class 2 is not in the memory: not asked
    assert r["picture"]["R@1"] == 0.5 and r["both"]["R@1"] == 1.0
    assert r["picture"]["accepted_wrong"] == 0.5 and r["both"]["accepted_wrong"] == 0.0


def test_the_photo_report_covers_each_gallery_and_question_split():
    rng = np.random.default_rng(0)
    emb = {
        k: unit(rng.normal(size=(n, 8)))
        for k, n in [
            ("text", 6),
            ("audio", 6),
            ("human_audio", 3),
            ("photo_image", 4),
            ("label_text", 6),
        ]
    }
    ys = {
        "text": np.arange(6) % 3,
        "audio": np.arange(6) % 3,
        "human_audio": np.array([4, 5, 5]),
        "photo_image": np.array([0, 1, 1, 2]),
        "label_text": np.arange(6),
    }
    rep = photo_memory_report(emb, ys, t=0.0)
    assert rep["photo_image"]["pictures"] == 4 and rep["photo_image"]["classes"] == 3
    # No recorded word names a class in the memory: that split is not asked (not a NaN row).
    assert set(rep["photo_image"]["asked"]) == {"text", "audio"}
    assert "clipart_image" not in rep
    assert set(rep["by_label"]) == {"text", "audio", "human_audio"}
    assert photo_memory_report({k: v for k, v in emb.items() if k != "label_text"}, ys, 0.0) == {}


def test_the_teacher_sees_two_views_of_one_photo_as_closer_than_two_photos(pictures):
    from visualbyte_export.teacher import FEATURES, load_teacher, teacher_features

    _, src, pics = pictures
    photos = [p for p in pics if p.source == "photo"]
    a = photos[0]
    b = next(p for p in photos if p.key != a.key)
    rng = np.random.default_rng(0)
    views = [
        np.asarray(P.plain_view(src.load(a.ref)).resize((96, 96))),
        np.asarray(P.camera(P.plain_view(src.load(a.ref)).resize((96, 96)), rng)),
        np.asarray(P.plain_view(src.load(b.ref)).resize((96, 96))),
    ]
    f = teacher_features(load_teacher(), np.stack(views)).astype(np.float32)
    assert f.shape == (3, FEATURES)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-2)
    assert f[0] @ f[1] > f[0] @ f[2]
