"""The one image reader (issue 22, item 5): a rule per mode, EXIF upright, bad files named, and
what it means for the dataset fingerprint, embed and the openai backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmmclf.errors import ImageReadError
from lmmclf.image_read import BACKGROUND, check_image, read_image, read_rgb


def _noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _plain(path: Path) -> np.ndarray:
    """What every stage read before the one reader: the file's ``convert("RGB")``."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _rotated_jpeg(path: Path, width: int = 40, height: int = 24, orientation: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_noise(width, height, seed=7)).save(path, exif=exif, quality=95)
    return path


# -- modes that decode as they always did -----------------------------------------------------
def _common_modes(folder: Path) -> dict[str, Path]:
    pixels = _noise(12, 8)
    rgb = Image.fromarray(pixels)
    files = {
        "RGB png": (rgb, "rgb.png"),
        "RGB jpeg": (rgb, "rgb.jpg"),
        "L": (rgb.convert("L"), "grey.png"),
        "P": (rgb.quantize(16), "palette.png"),
        "1": (rgb.convert("1"), "bits.png"),
        "CMYK jpeg": (rgb.convert("CMYK"), "cmyk.jpg"),
        "YCbCr tiff": (rgb.convert("YCbCr"), "ycbcr.tif"),
        "RGBA opaque": (rgb.convert("RGBA"), "opaque.png"),
    }
    out = {}
    for name, (image, filename) in files.items():
        # a raw YCbCr TIFF from Pillow < 13 does not open again in Pillow itself; packbits opens in all
        image.save(folder / filename, **({"compression": "packbits"} if filename.endswith(".tif") else {}))
        out[name] = folder / filename
    return out


def test_untagged_common_modes_decode_exactly_as_convert_rgb(tmp_path):
    for name, path in _common_modes(tmp_path).items():
        read = read_image(path)
        assert read.pixels.mode == "RGB" and not read.turned and not read.changed, name
        assert np.array_equal(np.asarray(read.pixels), _plain(path)), name
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.mode == "CMYK" and cmyk.format == "JPEG"


def test_orientation_1_changes_nothing(tmp_path):
    path = _rotated_jpeg(tmp_path / "up.jpg", orientation=1)
    read = read_image(path)
    assert not read.changed and read.pixels.size == (40, 24)
    assert np.array_equal(np.asarray(read.pixels), _plain(path))


# -- modes the reader changes -------------------------------------------------------------------
def test_exif_orientation_6_is_turned_upright(tmp_path):
    path = _rotated_jpeg(tmp_path / "phone.jpg")
    read = read_image(path)
    assert read.turned and read.changed and read.pixels.size == (24, 40)  # stored 40 wide, shown 24 wide
    with Image.open(path) as image:
        upright = image.convert("RGB").transpose(Image.Transpose.ROTATE_270)  # orientation 6: turn 90 degrees clockwise
    assert np.array_equal(np.asarray(read.pixels), np.asarray(upright))


def test_sixteen_bit_grey_is_scaled_by_the_range_not_clipped(tmp_path):
    values = np.array([[0, 255, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # opens as I;16
    Image.fromarray(values.astype(np.int32)).save(tmp_path / "int.tif")  # mode I
    Image.fromarray(values.astype(np.float32)).save(tmp_path / "float.tif")  # mode F
    for name in ("deep.png", "int.tif", "float.tif"):
        read = read_image(tmp_path / name)
        grey = np.asarray(read.pixels)
        assert read.changed and read.mode in ("I;16", "I", "F"), name
        assert grey[0, :, 0].tolist() == [0, 1, 128, 255] and (grey == grey[..., :1]).all(), name
    assert _plain(tmp_path / "deep.png")[0, :, 0].tolist() == [0, 255, 255, 255]  # what the old rule did: clipped
    # the scale comes from the mode, not from this image's brightest pixel
    dim = np.array([[0, 1000]], dtype=np.uint16)
    Image.fromarray(dim).save(tmp_path / "dim.png")
    assert np.asarray(read_rgb(tmp_path / "dim.png"))[0, :, 0].tolist() == [0, 4]


def test_palette_transparency_is_white(tmp_path):
    palette = Image.new("P", (3, 1))
    palette.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (256 * 3 - 9))
    palette.putdata([0, 1, 2])
    palette.save(tmp_path / "keyed.png", transparency=0)  # index 0 (black) is transparent
    read = read_image(tmp_path / "keyed.png")
    assert read.mode == "P" and read.changed
    assert np.asarray(read.pixels)[0].tolist() == [list(BACKGROUND), [200, 10, 10], [10, 200, 10]]
    assert _plain(tmp_path / "keyed.png")[0, 0].tolist() == [0, 0, 0]  # the old rule showed the hidden colour


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[0, :, :3] = [[0, 0, 0], [0, 0, 0], [40, 80, 120]]
    rgba[0, :, 3] = [0, 128, 255]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba, "RGBA").convert("LA").save(tmp_path / "la.png")
    for name in ("rgba.png", "la.png"):
        read = read_image(tmp_path / name)
        pixels = np.asarray(read.pixels).astype(int)
        assert read.changed, name
        assert pixels[0, 0].tolist() == [255, 255, 255], name  # transparent: the background
        assert abs(pixels[0, 1] - 127).max() <= 1, name  # half: black blended with white
    assert np.asarray(read_rgb(tmp_path / "rgba.png"))[0, 2].tolist() == [40, 80, 120]  # opaque: as stored


def test_an_animation_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:], duration=50)  # APNG
    for name in ("anim.gif", "anim.png"):
        with Image.open(tmp_path / name) as image:
            assert image.n_frames == 3
        pixels = np.asarray(read_rgb(tmp_path / name)).astype(int)
        assert pixels[..., 0].min() > 200 and pixels[..., 2].max() < 30, name


# -- files that cannot be read ----------------------------------------------------------------
def _one_sentence_naming(exc: ImageReadError, path: Path) -> None:
    text = str(exc)
    assert str(path) in text and text.endswith(".") and "\n" not in text and "Traceback" not in text


def test_bad_files_fail_with_one_sentence_naming_them(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_noise(64, 64)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all\n")
    cases = {truncated: "cannot decode image", empty: "empty", text: "not an image", tmp_path / "gone.png": "cannot be read"}
    for path, reason in cases.items():
        for reader in (read_image, check_image):
            with pytest.raises(ImageReadError) as caught:
                reader(path)
            assert reason in caught.value.reason, (path, caught.value.reason)
            _one_sentence_naming(caught.value, path)


def test_decompression_bombs_fail_even_below_pillows_hard_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(_noise(16, 16)).save(path)  # 256 pixels
    for limit in (200, 100):  # Pillow warns past the limit and raises past twice the limit: both fail here
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ImageReadError, match="MAX_IMAGE_PIXELS") as caught:
            read_image(path)
        _one_sentence_naming(caught.value, path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256)
    assert read_rgb(path).size == (16, 16)


# -- the dataset fingerprint ----------------------------------------------------------------------
def _expected_fingerprint(index, kinds: dict[str, str] | None = None) -> str:
    """The fingerprint as defined before the reader: class names, then (id, file sha256, "image", label, split)."""
    from lmmclf.datasets import fingerprint as fp
    from lmmclf.hashing import hash_file

    kinds = kinds or {}
    return fp.fingerprint(index.class_names, [(item.id, hash_file(item.path), kinds.get(item.id, "image"), item.label, item.split)
                                              for item in index.items])


def test_an_untagged_dataset_keeps_its_fingerprint(tmp_path, store):
    from lmmclf.datasets import load_dataset
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "images", n_train=2, n_test=1)
    Image.fromarray(_noise(10, 6)).convert("CMYK").save(root / "train" / "a" / "a_cmyk.jpg")
    index = load_dataset(toy_config(root, "unused"), store, show_progress=False)
    assert len(index.items) == 10 and index.fingerprint == _expected_fingerprint(index)


def test_a_tagged_image_changes_the_identity_once_and_is_remembered(tmp_path, store, monkeypatch):
    import lmmclf.datasets.fingerprint as fp
    from lmmclf.datasets import load_dataset
    from lmmclf.filehash import FileHashCache
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "images", n_train=2, n_test=1)
    rotated = _rotated_jpeg(root / "train" / "b" / "b_phone.jpg")
    cfg = toy_config(root, "unused")
    index = load_dataset(cfg, store, show_progress=False)
    phone = next(item.id for item in index.items if item.path == rotated)
    assert index.fingerprint != _expected_fingerprint(index)
    assert index.fingerprint == _expected_fingerprint(index, {phone: fp.IMAGE_CHANGED})
    # the kind is remembered with the file's hash: a second load opens no image
    calls = []
    original = fp.hash_and_verify
    monkeypatch.setattr(fp, "hash_and_verify", lambda path: calls.append(path) or original(path))
    assert load_dataset(cfg, store, show_progress=False).fingerprint == index.fingerprint and calls == []
    # a memo from before the reader says only "image-ok": each image is checked once more, same result
    memo = FileHashCache(store.file_hash_db())
    for item in index.items:
        memo.remember(item.path, memo.lookup(item.path)[0], fp.NOTE_OK)
    memo.close()
    assert load_dataset(cfg, store, show_progress=False).fingerprint == index.fingerprint
    assert len(calls) == len(index.items)
    calls.clear()
    load_dataset(cfg, store, show_progress=False)
    assert calls == []


def test_pixel_digest_separates_changed_images_only():
    import lmmclf.datasets.fingerprint as fp

    assert fp.pixel_digest("abc", fp.ok_note(fp.IMAGE)) == "abc"
    assert fp.pixel_digest("abc", fp.NOTE_OK) == "abc"  # a cached video frame: lmmclf wrote it as plain RGB
    assert fp.pixel_digest("abc", fp.ok_note(fp.IMAGE_CHANGED)) == f"abc/{fp.IMAGE_CHANGED}"


# -- the stages, through the command line -----------------------------------------------------------
@pytest.fixture
def phone_folder(tmp_path):
    """An image folder with one EXIF-rotated photo and one text file named .jpg, registered as ``phone``."""
    from lmmclf.datasets import register
    from lmmclf.testing.layouts import make_imagefolder

    root = make_imagefolder(tmp_path / "phone", class_names=("a", "b"), n_train=2, n_test=1)
    rotated = _rotated_jpeg(root / "train" / "a" / "a_phone.jpg")
    bad = root / "train" / "b" / "b_notes.jpg"
    bad.write_text("shopping list\n")
    register("phone", root, "imagefolder")
    return root, rotated, bad


def test_embed_sees_the_upright_photo_and_goes_on_past_a_bad_file(runner, phone_folder, tiny_clip, store):
    import h5py
    import torch

    from lmmclf.cli.app import app
    from lmmclf.clip import load_clip
    from lmmclf.embed.read import read_image_embeddings

    root, rotated, bad = phone_folder
    result = runner.invoke(app, ["embed", "phone", "--images-only", "--clip-model", tiny_clip, "--device", "cpu",
                                 "--num-workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == 7 and summary["image_errors"] == 0
    assert "b_notes.jpg" in result.stderr and "not an image" in result.stderr  # skipped, named, the rest went on
    with h5py.File(store.path("embed-image", summary["image_key"])) as handle:
        got = read_image_embeddings(handle)
    row = next(i for i, item_id in enumerate(got.ids) if item_id.endswith("a_phone.jpg"))
    clip = load_clip(tiny_clip, None, "cpu")
    with Image.open(rotated) as image:
        stored = image.convert("RGB")
    upright = stored.transpose(Image.Transpose.ROTATE_270)
    with torch.inference_mode():
        want, sideways = clip.model.encode_image(torch.stack([clip.preprocess(upright), clip.preprocess(stored)])).numpy()
    np.testing.assert_allclose(got.embeddings[row], want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got.embeddings[row], sideways, atol=1e-3)


def test_embed_records_an_image_that_breaks_after_the_check(tmp_path, tiny_clip):
    from lmmclf.clip import load_clip
    from lmmclf.embed.images import EncodeSettings, image_batches

    good, gone = tmp_path / "good.png", tmp_path / "gone.png"
    Image.fromarray(_noise(20, 20)).save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    clip = load_clip(tiny_clip, None, "cpu")
    batches = list(image_batches(clip.model, [str(good), str(empty), str(gone)], clip.preprocess,
                                 EncodeSettings(batch_size=2, num_workers=0, device="cpu", precision="fp32")))
    vectors = np.concatenate([batch for _, batch, _ in batches])
    errors = [error for _, _, batch_errors in batches for error in batch_errors]
    assert vectors[0].any() and not vectors[1].any() and not vectors[2].any()
    assert errors[0] == "" and str(empty) in errors[1] and "empty" in errors[1] and str(gone) in errors[2]


def test_finetune_stops_on_an_unreadable_image_naming_it(tmp_path):
    from lmmclf.errors import DatasetError
    from lmmclf.finetune.sources import ImageFiles

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    with pytest.raises(DatasetError, match="bad.jpg") as caught:
        ImageFiles([bad], lambda image: image)[0]
    assert "empty" in str(caught.value) and "datasets check" in str(caught.value)
    rotated = _rotated_jpeg(tmp_path / "phone.jpg")
    assert ImageFiles([rotated], lambda image: image)[0].size == (24, 40)


def test_openai_backend_sends_the_upright_pixels(runner, phone_folder):
    from lmmclf.cli.app import app
    from lmmclf.hashing import hash_file
    from lmmclf.testing.openai_server import FakeOpenAIServer

    root, rotated, bad = phone_folder
    with FakeOpenAIServer() as server:
        result = runner.invoke(app, ["describe", "phone", "--backend", "openai", "--base-url", server.url,
                                     "--model", "llava-hf/llava-1.5-13b-hf", "--split", "train", "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        requests = list(server.requests)
    assert summary["described"] == 5 and summary["failed"] == 0
    sizes = {request["image"]: tuple(request["image_size"]) for request in requests}
    assert hash_file(rotated) not in sizes  # never the file's own (sideways) bytes
    assert list(sizes.values()).count((24, 40)) == 1 and (40, 24) not in sizes.values()  # upright: 24 wide, 40 high
    # the untagged PNGs go as they are: the server gets the files' own bytes
    plain = {hash_file(path) for path in root.rglob("*.png") if "train" in path.parts}
    assert plain <= set(sizes)
