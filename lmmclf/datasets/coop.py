"""The eleven CLIP benchmarks laid out as CoOp's ``DATASETS.md`` (KaiyangZhou/CoOp) has them.

Nine of them (UCF-101's middle frames among them) come with a fixed split file written by
CoOp's ``OxfordPets.save_split``: ``split_zhou_<Name>.json`` holding
``{"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}``, paths relative
to the dataset's image folder, labels 0-based. FGVC-Aircraft is read from its own list files
(``images_variant_{train,val,test}.txt`` + ``variants.txt``) and ImageNet from its folders
(``images/{train,val}/<wnid>/``) with ``classnames.txt``, as CoOp's readers do.

What lmmclf makes of them (see docs/datasets.md):

- classes in label order (CoOp's ``get_lab2cname``), named as CoOp's trainers prompt them:
  the split file's class name with ``_`` read as a space (``Apply_Eye_Makeup`` ->
  "Apply Eye Makeup", ``american_bulldog`` -> "american bulldog");
- ``train`` is CoOp's train + val (the papers' protocol: 9,537 UCF-101 images, official split 1);
  the val entries are kept as the dataset's own validation subset (``Scan.val_ids``), so model
  selection can use it and ``datasets info`` reports it; ``test`` is CoOp's test
  (ImageNet: its val folder, as CoOp does);
- a listed file that is missing, unreadable or leads outside the image folder is skipped with
  its reason; a malformed split file, or a label whose class name disagrees with another
  entry of the same label, is a :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.base import SkippedItem
from lmmclf.datasets.sources import (
    Scan,
    Source,
    file_problem,
    list_folder,
    listed_path,
    outside_root,
    require_dir,
    source_id,
)
from lmmclf.errors import DatasetError

COOP_SPLITS = ("train", "val", "test")
# CoOp's split -> lmmclf's: val joins train (the papers train on train + val) and is remembered.
AS_SPLIT = {"train": "train", "val": "train", "test": "test"}


@dataclass(frozen=True)
class CoopLayout:
    """Where one CoOp dataset lives under ``$DATA`` (values copied from CoOp's ``datasets/*.py``).

    Args:
        type_name: the lmmclf dataset type.
        folder: ``dataset_dir``, the folder under ``$DATA``.
        image_dir: ``image_dir`` relative to ``folder``; split-file paths are relative to it
            ("" for Stanford Cars, whose paths start with ``cars_train/``/``cars_test/``).
        marker: the file that identifies the layout (the split file, or the class list).
        title: the dataset's name, for messages.
        video: ids drop the extension (UCF-101's frames stand for videos; see ``source_id``).
        renames: folder-style names CoOp renamed when it wrote the split file; applied to a
            split file that still holds the old name, so prompts read the same either way.
    """

    type_name: str
    folder: str
    image_dir: str
    marker: str
    title: str
    video: bool = False
    renames: dict[str, str] = field(default_factory=dict)


# CoOp's datasets/eurosat.py NEW_CNAMES and datasets/caltech101.py NEW_CNAMES.
EUROSAT_NAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}
CALTECH_NAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}

LAYOUTS: dict[str, CoopLayout] = {
    layout.type_name: layout
    for layout in (
        CoopLayout("imagenet", "imagenet", "images", "classnames.txt", "ImageNet"),
        CoopLayout("caltech101", "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json", "Caltech101", renames=CALTECH_NAMES),
        CoopLayout("oxford_pets", "oxford_pets", "images", "split_zhou_OxfordPets.json", "OxfordPets"),
        CoopLayout("stanford_cars", "stanford_cars", "", "split_zhou_StanfordCars.json", "StanfordCars"),
        CoopLayout("oxford_flowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json", "Flowers102"),
        CoopLayout("food101", "food-101", "images", "split_zhou_Food101.json", "Food101"),
        CoopLayout("fgvc_aircraft", "fgvc_aircraft", "images", "variants.txt", "FGVCAircraft"),
        CoopLayout("sun397", "sun397", "SUN397", "split_zhou_SUN397.json", "SUN397"),
        CoopLayout("dtd", "dtd", "images", "split_zhou_DescribableTextures.json", "DTD"),
        CoopLayout("eurosat", "eurosat", "2750", "split_zhou_EuroSAT.json", "EuroSAT", renames=EUROSAT_NAMES),
        CoopLayout("ucf101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", "UCF101", video=True),
    )
}


def find(root: Path, layout: CoopLayout) -> Path | None:
    """The dataset folder of ``layout`` at ``root``: ``root`` itself or ``root/<folder>``, or None.

    A folder qualifies when it holds the layout's marker file and its image folder.
    """
    for folder in (root, root / layout.folder):
        if (folder / layout.marker).is_file() and (folder / layout.image_dir).is_dir():
            return folder
    return None


def find_all(data_root: Path) -> dict[str, Path]:
    """Every CoOp dataset found at ``data_root`` (``$DATA``) or as ``data_root`` itself: type -> folder."""
    found = {}
    for name, layout in LAYOUTS.items():
        folder = find(data_root, layout)
        if folder is not None:
            found[name] = folder
    return found


def locate(root: Path, layout: CoopLayout) -> Path:
    """Like :func:`find`, but a :class:`DatasetError` naming the expected file when absent."""
    require_dir(root, f"CoOp's {layout.title} folder")
    folder = find(root, layout)
    if folder is None:
        image_dir = f"{layout.image_dir}/ and " if layout.image_dir else ""
        raise DatasetError(
            f"CoOp's {layout.title} layout not found: expected {image_dir}{layout.marker} in {root} "
            f"(or in {root / layout.folder}), as CoOp's DATASETS.md describes."
        )
    return folder


def readable(name: str) -> str:
    """A class name as CoOp's trainers put it in a prompt: ``_`` read as a space."""
    return name.replace("_", " ").strip()


class _Collector:
    """Sources, skipped entries and class names of one CoOp dataset, checked as they are added."""

    def __init__(self, base: Path, section: DatasetSection, listing: str, video: bool = False):
        self.base, self.section, self.listing, self.video = base, section, listing, video
        self.sources: list[Source] = []
        self.skipped: list[SkippedItem] = []
        self.val_ids: set[str] = set()

    def add(self, relative: str, label: int, split: str, where: str) -> None:
        """One listed file (``relative`` to the image folder); skipped with its reason if unusable."""
        path = listed_path(self.base, relative)
        problem = outside_root(self.base, path, self.section.allow_outside_root) or file_problem(path)
        if problem is not None:
            self.skipped.append(SkippedItem(str(path), f"listed in {self.listing} {where} but {problem}"))
            return
        item_id = source_id(Path(relative).as_posix(), path, self.video)
        self.sources.append(Source(item_id, path, label, AS_SPLIT[split]))
        if split == "val":
            self.val_ids.add(item_id)

    def scan(self, class_names: list[str], options: dict) -> Scan:
        return Scan(class_names, self.sources, self.skipped, options=options, val_ids=self.val_ids)


def read_split_json(path: Path) -> dict[str, list]:
    """The three lists of a ``split_zhou_*.json`` (structure checked, entries not yet)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"CoOp split file {path} cannot be read as JSON ({exc}).") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(split), list) for split in COOP_SPLITS):
        raise DatasetError(
            f"CoOp split file {path} must be an object with train, val and test lists of "
            "[path, label, classname] entries."
        )
    return data


def scan_split_json(folder: Path, layout: CoopLayout, section: DatasetSection) -> Scan:
    """Read a dataset released with CoOp's ``split_zhou_<Name>.json`` (``OxfordPets.read_split``)."""
    split_file = folder / layout.marker
    data = read_split_json(split_file)
    image_dir = folder / layout.image_dir if layout.image_dir else folder
    collector = _Collector(image_dir, section, split_file.name, layout.video)
    names: dict[int, tuple[str, str]] = {}  # label -> (class name, where it was first seen)
    for split in COOP_SPLITS:
        for number, entry in enumerate(data[split]):
            where = f"{split}[{number}]"
            if not (
                isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and entry[0]
                and isinstance(entry[1], int) and not isinstance(entry[1], bool) and entry[1] >= 0
                and isinstance(entry[2], str)
            ):
                # one malformed entry is its own problem, like a missing file
                collector.skipped.append(
                    SkippedItem(f"{split_file} {where}", f"is not a [path, label, classname] entry: {entry!r:.80}")
                )
                continue
            relative, label, name = entry
            name = layout.renames.get(name, name)
            seen = names.setdefault(label, (name, where))
            if seen[0] != name:
                raise DatasetError(
                    f"CoOp split file {split_file}: {where} gives label {label} the class '{name}' "
                    f"but {seen[1]} calls it '{seen[0]}'."
                )
            collector.add(relative, label, split, where)
    missing = [label for label in range(max(names, default=-1) + 1) if label not in names]
    if not names or missing:
        raise DatasetError(f"CoOp split file {split_file} has no entry for label(s) {missing[:5] or [0]}; labels must run 0..N-1.")
    class_names = [readable(names[label][0]) for label in range(len(names))]
    return collector.scan(class_names, {"layout": "coop"})


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with 1-based numbers (CRLF, BOM and surrounding spaces removed)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"CoOp list file {path} cannot be read as UTF-8 text ({exc}).") from exc
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def scan_aircraft(folder: Path, section: DatasetSection) -> Scan:
    """FGVC-Aircraft as CoOp's ``fgvc_aircraft.py`` reads it.

    ``variants.txt`` gives the classes in order, one per line (names hold spaces and slashes:
    "Cessna 172", "F/A-18"); ``images_variant_<split>.txt`` lines are ``"<image id> <variant>"``,
    the image being ``images/<image id>.jpg``. The release's val list is CoOp's val.
    """
    variants = folder / "variants.txt"
    class_names = [line for _, line in _text_lines(variants)]
    if not class_names:
        raise DatasetError(f"FGVC-Aircraft class list {variants} is empty.")
    index = {name: label for label, name in enumerate(class_names)}
    collector = _Collector(folder / "images", section, "", False)
    for split in COOP_SPLITS:
        listing = folder / f"images_variant_{split}.txt"
        if not listing.is_file():
            raise DatasetError(f"FGVC-Aircraft list {listing} is missing (keep the release's data/ folder whole).")
        collector.listing = listing.name
        for number, line in _text_lines(listing):
            image, _, variant = line.partition(" ")
            label = index.get(variant.strip())
            if label is None:
                raise DatasetError(f"{listing} line {number}: variant '{variant.strip()}' is not in variants.txt.")
            collector.add(f"{image}.jpg", label, split, f"line {number}")
    return collector.scan(class_names, {"layout": "coop"})


def read_imagenet_classnames(path: Path) -> dict[str, str]:
    """``classnames.txt``: ``"n01440764 tench"`` lines (CLIP's names) -> {wnid: name}."""
    names = {}
    for number, line in _text_lines(path):
        wnid, _, name = line.partition(" ")
        if not name.strip():
            raise DatasetError(f"{path} line {number}: expected '<wnid> <class name>', got {line!r}.")
        names[wnid] = name.strip()
    return names


def scan_imagenet(folder: Path, section: DatasetSection) -> Scan:
    """ImageNet as CoOp's ``imagenet.py`` reads it: ``images/train/<wnid>/`` and ``images/val/<wnid>/``.

    Classes are the sorted train folders (CoOp's label order), named by ``classnames.txt``;
    the val folders are the test set (CoOp's "standard practice"), so there is no val subset.
    """
    names = read_imagenet_classnames(folder / "classnames.txt")
    images = folder / "images"
    listings = {}
    for split, sub in (("train", "train"), ("test", "val")):
        listings[split] = list_folder(require_dir(images / sub, f"ImageNet's {sub} class folders (CoOp layout)"))
    wnids = sorted(p.name for p in listings["train"].folders)
    unnamed = [wnid for wnid in wnids if wnid not in names]
    if unnamed:
        raise DatasetError(f"ImageNet class list {folder / 'classnames.txt'} has no name for the folder(s) {', '.join(unnamed[:5])}.")
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    sources, skipped = [], []
    for split, listing in listings.items():
        skipped += listing.skipped
        for class_dir in listing.folders:
            label = label_of.get(class_dir.name)
            if label is None:
                raise DatasetError(f"ImageNet val folder {class_dir} is not one of the train folders in {images / 'train'}.")
            files = list_folder(class_dir)
            skipped += files.skipped
            for file in files.files:
                sources.append(Source(file.relative_to(images).as_posix(), file, label, split))
    return Scan([names[wnid] for wnid in wnids], sources, skipped, options={"layout": "coop"})


class CoopAdapter(Adapter):
    """One CoOp dataset type; subclasses set ``type_name`` (see :func:`_adapter_for`)."""

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        return scan_layout(root, LAYOUTS[self.type_name], section)


def scan_layout(root: Path, layout: CoopLayout, section: DatasetSection) -> Scan:
    """Read the CoOp layout ``layout`` at ``root`` (its folder, or ``$DATA`` holding it)."""
    folder = locate(root, layout)
    if layout.type_name == "imagenet":
        return scan_imagenet(folder, section)
    if layout.type_name == "fgvc_aircraft":
        return scan_aircraft(folder, section)
    return scan_split_json(folder, layout, section)


def _adapter_for(layout: CoopLayout) -> type[Adapter]:
    where = f"{layout.folder}/{layout.image_dir + '/' if layout.image_dir else ''} + {layout.marker}"
    return type(
        f"Coop{layout.title}Adapter",
        (CoopAdapter,),
        {"type_name": layout.type_name, "summary": f"{layout.title}, CoOp layout: {where}; "
         + ("train = images/train, test = images/val" if layout.type_name == "imagenet" else "train = CoOp train+val")},
    )


# ucf101 is not here: its adapter reads both the official release and CoOp's frames.
COOP_ADAPTERS: tuple[type[Adapter], ...] = tuple(_adapter_for(l) for name, l in LAYOUTS.items() if name != "ucf101")
