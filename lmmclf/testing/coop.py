"""Tiny release-shaped trees of the eleven CoOp datasets (KaiyangZhou/CoOp ``DATASETS.md``).

Each builder lays out one dataset folder as CoOp's instructions leave it under ``$DATA`` (a few
small JPEGs per class) and writes its split file as CoOp's own code writes it:
``OxfordPets.save_split`` (``{"train": [[relpath, label, classname], ...], "val": ..., "test": ...}``,
through Dassl's ``write_json``: ``indent=4, separators=(",", ": ")``), with the class names,
label orders and quirks of the readers in CoOp's ``datasets/*.py``:

- UCF-101: CamelCase ``classInd.txt`` names split on capitals and joined with ``_``
  (``re.findall("[A-Z][^A-Z]*", action)``), ``.avi`` -> ``.jpg``, ``Handstand_Pushups`` holding
  ``v_HandStandPushups_*``; val is 20% of each class of ``trainlist01`` (``split_trainval``);
- Caltech101: ``BACKGROUND_Google`` and ``Faces_easy`` on disk but in no split; folders sorted
  case-sensitively (``Faces`` first) and renamed (``airplanes`` -> ``airplane``, ``Faces`` -> ``face``);
- EuroSAT: readable names (``AnnualCrop`` -> "Annual Crop Land"); SUN397: ``a/apartment_building/outdoor``
  -> "outdoor apartment_building"; Stanford Cars: year first, paths relative to the dataset folder;
- FGVC-Aircraft: ``variants.txt`` and ``images_variant_{train,val,test}.txt`` (names with spaces
  and slashes); ImageNet: ``images/{train,val}/<wnid>/`` and ``classnames.txt``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmmclf.testing.images import class_image, write_image

SIZE = (8, 8)


@dataclass
class CoopFixture:
    """What a builder wrote: the dataset folder, the class names lmmclf should read, the counts."""

    folder: Path
    class_names: list[str]
    train: int  # CoOp's train
    val: int
    test: int


def write_split(path: Path, train: list, val: list, test: list) -> Path:
    """``OxfordPets.save_split`` through Dassl's ``write_json`` (same keys, order and formatting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        json.dump({"train": train, "val": val, "test": test}, handle, indent=4, separators=(",", ": "))
    return path


class _Images:
    """Writes class-coloured tiny JPEGs (deterministic, no two alike)."""

    def __init__(self, n_classes: int, seed: int = 0):
        self.n_classes, self.rng = n_classes, np.random.default_rng(seed)

    def __call__(self, path: Path, label: int) -> None:
        write_image(path, class_image(label, self.n_classes, SIZE, self.rng))


def _three_way(names: list[str], per_class: int = 4) -> list[tuple[int, list[int]]]:
    """DTD.read_and_split_data's 50/20/30 cut of ``per_class`` images: (label, [n_train, n_val, n_test])."""
    n_train, n_val = round(per_class * 0.5), round(per_class * 0.2)
    return [(label, [n_train, n_val, per_class - n_train - n_val]) for label in range(len(names))]


def _json_dataset(
    folder: Path, image_dir: str, split_name: str, classes: list[tuple[str, str]], file_name, per_class: int = 4,
    path_prefix: str = "",
) -> CoopFixture:
    """A dataset CoOp splits 50/20/30 per class: ``classes`` is [(folder, classname)] in label order.

    Args:
        file_name: (folder, index) -> the image file name.
        path_prefix: prepended to each JSON path (Stanford Cars: none, paths hold cars_train/).
    """
    images = _Images(len(classes))
    lists: dict[str, list] = {"train": [], "val": [], "test": []}
    index = 0
    for label, counts in _three_way([c for c, _ in classes], per_class):
        class_folder, classname = classes[label]
        for split, count in zip(lists, counts):
            for _ in range(count):
                index += 1
                relative = f"{path_prefix}{file_name(class_folder, index)}"
                images(folder / image_dir / relative, label)
                lists[split].append([relative, label, classname])
    write_split(folder / split_name, lists["train"], lists["val"], lists["test"])
    return CoopFixture(folder, [name.replace("_", " ") for _, name in classes], *(len(v) for v in lists.values()))


def make_ucf101(data: Path) -> CoopFixture:
    """``ucf101/UCF-101-midframes/`` + ``split_zhou_UCF101.json`` as CoOp's ``ucf101.py`` writes them."""
    folder = data / "ucf101"
    actions = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]  # classInd.txt order
    images = _Images(len(actions))
    lists: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, action in enumerate(actions):
        renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))
        stem = "HandStandPushups" if action == "HandstandPushups" else action  # the release's own spelling
        trainval = [f"v_{stem}_g{g:02d}_c01.jpg" for g in range(8, 13)]  # trainlist01: groups 8-25
        test = [f"v_{stem}_g{g:02d}_c01.jpg" for g in (1, 2)]  # testlist01: groups 1-7
        n_val = round(len(trainval) * 0.2)
        for split, files in (("val", trainval[:n_val]), ("train", trainval[n_val:]), ("test", test)):
            for name in files:
                images(folder / "UCF-101-midframes" / renamed / name, label)
                lists[split].append([f"{renamed}/{name}", label, renamed])
    write_split(folder / "split_zhou_UCF101.json", lists["train"], lists["val"], lists["test"])
    return CoopFixture(folder, ["Apply Eye Makeup", "Handstand Pushups", "Yo Yo"], *(len(v) for v in lists.values()))


def make_caltech101(data: Path) -> CoopFixture:
    folder = data / "caltech-101"
    # CoOp sorts the folders case-sensitively ("Faces" before "accordion") after dropping the ignored two
    classes = [("Faces", "face"), ("accordion", "accordion"), ("airplanes", "airplane")]
    fixture = _json_dataset(folder, "101_ObjectCategories", "split_zhou_Caltech101.json", classes, lambda c, i: f"{c}/image_{i:04d}.jpg")
    images = _Images(1)
    for ignored in ("BACKGROUND_Google", "Faces_easy"):  # on disk, in no split
        images(folder / "101_ObjectCategories" / ignored / "image_0001.jpg", 0)
    return fixture


def make_oxford_pets(data: Path) -> CoopFixture:
    folder = data / "oxford_pets"
    classes = [("Abyssinian", "abyssinian"), ("american_bulldog", "american_bulldog"), ("Bengal", "bengal")]
    fixture = _json_dataset(folder, "images", "split_zhou_OxfordPets.json", classes, lambda c, i: f"{c}_{i}.jpg")
    (folder / "annotations").mkdir(exist_ok=True)
    (folder / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\n")
    return fixture


def make_stanford_cars(data: Path) -> CoopFixture:
    folder = data / "stanford_cars"
    classes = [("", "2000 AM General Hummer SUV"), ("", "2012 Acura RL Sedan"), ("", "2012 BMW M3 Coupe")]
    images = _Images(len(classes))
    lists: dict[str, list] = {"train": [], "val": [], "test": []}
    number = {"cars_train": 0, "cars_test": 0}
    for label, counts in _three_way([n for _, n in classes]):
        for split, count in zip(lists, counts):
            sub = "cars_test" if split == "test" else "cars_train"
            for _ in range(count):
                number[sub] += 1
                relative = f"{sub}/{number[sub]:05d}.jpg"
                images(folder / relative, label)
                lists[split].append([relative, label, classes[label][1]])
    (folder / "devkit").mkdir(exist_ok=True)
    write_split(folder / "split_zhou_StanfordCars.json", lists["train"], lists["val"], lists["test"])
    return CoopFixture(folder, [n for _, n in classes], *(len(v) for v in lists.values()))


def make_oxford_flowers(data: Path) -> CoopFixture:
    folder = data / "oxford_flowers"
    names = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
    fixture = _json_dataset(folder, "jpg", "split_zhou_OxfordFlowers.json", [("", n) for n in names], lambda c, i: f"image_{i:05d}.jpg")
    (folder / "cat_to_name.json").write_text(json.dumps({str(i + 1): n for i, n in enumerate(names)}))
    return fixture


def make_food101(data: Path) -> CoopFixture:
    classes = [(c, c) for c in ("apple_pie", "baby_back_ribs", "baklava")]
    return _json_dataset(data / "food-101", "images", "split_zhou_Food101.json", classes, lambda c, i: f"{c}/{1005600 + i}.jpg")


def make_sun397(data: Path) -> CoopFixture:
    folder = data / "sun397"
    dirs = ["a/abbey", "a/apartment_building/outdoor", "b/balcony/interior"]  # ClassName.txt without the leading /
    classes = [(d, " ".join(d.split("/")[1:][::-1])) for d in dirs]  # CoOp: indoor/outdoor first
    fixture = _json_dataset(folder, "SUN397", "split_zhou_SUN397.json", classes, lambda c, i: f"{c}/sun_{i:016d}.jpg")
    (folder / "ClassName.txt").write_text("".join(f"/{d}\n" for d in dirs))
    return fixture


def make_dtd(data: Path) -> CoopFixture:
    classes = [(c, c) for c in ("banded", "blotchy", "braided")]
    fixture = _json_dataset(data / "dtd", "images", "split_zhou_DescribableTextures.json", classes, lambda c, i: f"{c}/{c}_{i:04d}.jpg")
    for sub in ("imdb", "labels"):
        (data / "dtd" / sub).mkdir(exist_ok=True)
    return fixture


def make_eurosat(data: Path) -> CoopFixture:
    from lmmclf.datasets.coop import EUROSAT_NAMES

    classes = [(c, EUROSAT_NAMES[c]) for c in ("AnnualCrop", "Forest", "HerbaceousVegetation")]
    return _json_dataset(data / "eurosat", "2750", "split_zhou_EuroSAT.json", classes, lambda c, i: f"{c}/{c}_{i}.jpg")


def make_fgvc_aircraft(data: Path) -> CoopFixture:
    """``fgvc_aircraft/`` = the release's ``data/`` folder: ``images/``, ``variants.txt``, the variant lists."""
    folder = data / "fgvc_aircraft"
    variants = ["707-320", "Cessna 172", "F/A-18"]
    images = _Images(len(variants))
    counts = {"train": 2, "val": 1, "test": 1}
    number = 1025794
    for split, count in counts.items():
        lines = []
        for label, variant in enumerate(variants):
            for _ in range(count):
                number += 1
                images(folder / "images" / f"{number:07d}.jpg", label)
                lines.append(f"{number:07d} {variant}\n")
        (folder / f"images_variant_{split}.txt").write_text("".join(lines))
    (folder / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    (folder / "manufacturers.txt").write_text("Boeing\nCessna\nMcDonnell Douglas\n")
    return CoopFixture(folder, variants, *(len(variants) * n for n in counts.values()))


def make_imagenet(data: Path) -> CoopFixture:
    """``imagenet/images/{train,val}/<wnid>/`` and CLIP's ``classnames.txt``."""
    folder = data / "imagenet"
    names = {"n01440764": "tench", "n01443537": "goldfish", "n01484850": "great white shark"}
    images = _Images(len(names))
    for label, wnid in enumerate(sorted(names)):
        for k in range(2):
            images(folder / "images" / "train" / wnid / f"{wnid}_{10026 + k}.JPEG", label)
        images(folder / "images" / "val" / wnid / f"ILSVRC2012_val_{293 + label:08d}.JPEG", label)
    (folder / "classnames.txt").write_text("".join(f"{w} {n}\n" for w, n in names.items()))
    return CoopFixture(folder, list(names.values()), 2 * len(names), 0, len(names))


BUILDERS = {
    "imagenet": make_imagenet,
    "caltech101": make_caltech101,
    "oxford_pets": make_oxford_pets,
    "stanford_cars": make_stanford_cars,
    "oxford_flowers": make_oxford_flowers,
    "food101": make_food101,
    "fgvc_aircraft": make_fgvc_aircraft,
    "sun397": make_sun397,
    "dtd": make_dtd,
    "eurosat": make_eurosat,
    "ucf101": make_ucf101,
}


def make_coop(data: Path, only: tuple[str, ...] | None = None) -> dict[str, CoopFixture]:
    """Build CoOp datasets under ``data`` (``$DATA``); ``only`` picks some of :data:`BUILDERS`."""
    return {name: build(data) for name, build in BUILDERS.items() if only is None or name in only}
