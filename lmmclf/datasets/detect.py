"""Which dataset type a folder holds, for ``lmmclf datasets add NAME --root DIR`` without ``--type``.

Only layouts that identify themselves are inferred: a CoOp dataset folder (its split file or
class list beside its image folder), UCF-101's ``ucfTrainTestlist/``, a CSV manifest, and an
image folder (``train/<class>/`` and ``test/<class>/``, an optional ``val/``). ERA and BAR are not guessed (their
folders look like image folders); they need their names or ``--type``. A folder of images with
no class folders is refused: lmmclf would not know the classes or the splits.
"""

from __future__ import annotations

from pathlib import Path

from lmmclf.datasets import coop
from lmmclf.datasets.sources import child_ci, is_media, list_folder
from lmmclf.errors import DatasetError


def candidates(root: Path) -> list[tuple[str, str]]:
    """Every type ``root`` looks like, with what showed it: [(type, evidence)]."""
    found = []
    if root.is_file():
        if root.suffix.lower() == ".csv":
            found.append(("csv", f"{root.name} is a CSV manifest"))
        return found
    for name, layout in coop.LAYOUTS.items():
        if coop.find(root, layout) == root:  # the folder itself, not $DATA holding several
            found.append((name, f"CoOp's {layout.title} layout ({layout.marker})"))
    if not any(name == "ucf101" for name, _ in found):
        for folder in (root, root.parent):
            lists = child_ci(folder, "ucfTrainTestlist")
            if lists is not None and lists.is_dir():
                found.append(("ucf101", f"UCF-101's {lists}"))
                break
    if (root / "manifest.csv").is_file():
        found.append(("csv", "manifest.csv"))
    train, test = child_ci(root, "train"), child_ci(root, "test")
    if train is not None and test is not None and train.is_dir() and test.is_dir() and list_folder(train).folders:
        found.append(("imagefolder", "train/<class>/ and test/<class>/ folders"))
    return found


def infer_type(root: Path) -> tuple[str, str]:
    """The one type ``root`` holds and the evidence, or a :class:`DatasetError` saying why not.

    Raises:
        DatasetError: nothing recognised (a flat folder of images among them), or more than one
            type fits (several CoOp datasets under one ``$DATA``).
    """
    if not root.exists():
        raise DatasetError(f"Dataset root {root} does not exist.")
    found = candidates(root)
    if len(found) == 1:
        return found[0]
    if found:
        kinds = ", ".join(f"{name} ({why})" for name, why in found)
        raise DatasetError(f"{root} fits more than one dataset type ({kinds}): pass --type.")
    several = coop.find_all(root)
    if several:
        raise DatasetError(
            f"{root} holds several CoOp datasets ({', '.join(several)}): register them all with "
            f"`lmmclf datasets add-coop {root}`, or one with --root {root}/<its folder>."
        )
    refuse_flat(root)
    raise DatasetError(f"No dataset layout recognised in {root}: add --type TYPE (`lmmclf datasets list` shows the types).")


def refuse_flat(root: Path) -> None:
    """A :class:`DatasetError` if ``root`` is a folder of images with no train/ and test/ folders."""
    if not root.is_dir() or (child_ci(root, "train") is not None and child_ci(root, "test") is not None):
        return
    if any(is_media(p) for p in root.iterdir()):
        raise DatasetError(
            f"{root} holds images directly, with no classes or splits: arrange them as "
            "train/<class>/ and test/<class>/ folders, or list them in a CSV manifest (path,label,split)."
        )
