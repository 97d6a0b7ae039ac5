"""``lmmclf prototypes``: the LMM class prototypes C_l (paper 2, eq. 1)."""

from __future__ import annotations

import typer

from lmmclf.cli.common import load, print_json, reports_user_errors, require_dataset
from lmmclf.cli.options import DatasetArg, ForceOpt, JsonOpt
from lmmclf.console import console


@reports_user_errors
def prototypes(ctx: typer.Context, dataset: DatasetArg = None, force: ForceOpt = False, as_json: JsonOpt = False) -> None:
    """Average the description embeddings of each class's training images (never test images).

    Needs the text embeddings (`lmmclf embed DATASET`).
    """
    import h5py

    from lmmclf.datasets import load_dataset
    from lmmclf.prototypes import make_prototypes

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    index = load_dataset(cfg, store, show_progress=not console.quiet)
    path = make_prototypes(cfg, index, store, force=force)
    with h5py.File(path, "r") as handle:
        counts = handle["counts"][()].tolist()
        images = handle["images"][()].tolist()
        dim = int(handle["prototypes"].shape[1])
    summary = {"dataset": index.name, "key": path.stem, "classes": len(counts), "dim": dim,
               "descriptions_per_class": dict(zip(index.class_names, counts)), "images_per_class": dict(zip(index.class_names, images))}
    if as_json:
        print_json(summary)
        return
    console.print(f"[green]Prototypes[/] of {len(counts)} classes ({dim}-d) from {sum(counts)} training descriptions "
                  f"(min {min(counts)}, max {max(counts)} per class) [dim]{path.stem[:12]}[/]")
