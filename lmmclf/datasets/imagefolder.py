"""Users' own data: ``ROOT/train/<class>/*``, ``ROOT/test/<class>/*`` and an optional
``ROOT/val/<class>/*`` (images or videos).

Classes are the sorted names of the class folders (train, val and test together). A class
folder may hold images, videos (their middle frame is used), or both. A class folder that is
a symlink back to its split folder or above (a loop) is not a class: it is skipped with that
reason (see :func:`lmmclf.datasets.sources.list_folder`).

``val/`` is the release's own validation split, read as CoOp's val is
(:mod:`lmmclf.datasets.coop`): its images join ``train`` (every stage that trains or averages
uses train + val, the papers' protocol) and are remembered as ``Scan.val_ids``, so
``datasets info`` counts them and ``probe.val_fraction`` > 0 holds out exactly them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.sources import Scan, class_folder_sources, list_folder, require_dir, split_dirs
from lmmclf.errors import DatasetError

OPTIONAL = ("val",)


class ImageFolderAdapter(Adapter):
    type_name = "imagefolder"
    summary = ("ROOT/train/<class>/*, ROOT/test/<class>/* and an optional ROOT/val/<class>/* (joins train as "
               "its val split); images or videos; classes in sorted order")

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        require_dir(root, "an image folder with train/ and test/")
        names: set[str] = set()
        for folder in split_dirs(root, "an image folder", OPTIONAL).values():
            names.update(p.name for p in list_folder(folder).folders)
        if not names:
            raise DatasetError(f"{root} has no class folders under train/ or test/.")
        class_names = sorted(names)
        found, skipped = class_folder_sources(root, class_names, "the image folder", optional_splits=OPTIONAL)
        # val ids keep their val/ prefix, so they never collide with a train file of the same name
        val_ids = {s.id for s in found if s.split == "val"}
        sources = [dataclasses.replace(s, split="train") if s.split == "val" else s for s in found]
        return Scan(class_names, sources, skipped, val_ids=val_ids)
