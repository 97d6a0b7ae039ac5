"""Users' own data: ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*`` (images or videos).

Classes are the sorted names of the class folders (train and test together). A class
folder may hold images, videos (their middle frame is used), or both. A class folder that is
a symlink back to its split folder or above (a loop) is not a class: it is skipped with that
reason (see :func:`lmmclf.datasets.sources.list_folder`).
"""

from __future__ import annotations

from pathlib import Path

from lmmclf.config import DatasetSection
from lmmclf.datasets.adapter import Adapter
from lmmclf.datasets.sources import Scan, class_folder_sources, list_folder, require_dir, split_dirs
from lmmclf.errors import DatasetError


class ImageFolderAdapter(Adapter):
    type_name = "imagefolder"
    summary = "ROOT/train/<class>/* and ROOT/test/<class>/* (images or videos); classes in sorted order"

    def scan(self, root: Path, section: DatasetSection) -> Scan:
        require_dir(root, "an image folder with train/ and test/")
        names: set[str] = set()
        for folder in split_dirs(root, "an image folder").values():
            names.update(p.name for p in list_folder(folder).folders)
        if not names:
            raise DatasetError(f"{root} has no class folders under train/ or test/.")
        class_names = sorted(names)
        sources, skipped = class_folder_sources(root, class_names, "the image folder")
        return Scan(class_names, sources, skipped)
