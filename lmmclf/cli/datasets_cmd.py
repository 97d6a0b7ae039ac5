"""``lmmclf datasets``: register dataset roots, list them, and show what a dataset holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lmmclf.cli.common import load, override_flags, print_json, reports_user_errors
from lmmclf.cli.options import JsonOpt
from lmmclf.console import console

app = typer.Typer(help="Register dataset roots and inspect datasets.", no_args_is_help=True)

SplitOpt = Annotated[Optional[int], typer.Option("--split", help="UCF-101's official split (1, 2 or 3); default: the config's dataset.split.")]


@app.command("add")
@reports_user_errors
def add(
    name: Annotated[str, typer.Argument(help="The name later commands use (e.g. ucf101, or your own).")],
    root: Annotated[Path, typer.Option("--root", help="The dataset's folder (for csv: the manifest file).")],
    type_name: Annotated[Optional[str], typer.Option("--type", help="A dataset type (`lmmclf datasets list`); default: NAME when it is one, else inferred from the folder.")] = None,
) -> None:
    """Register a dataset root once, so that later commands need only its name."""
    from lmmclf.datasets.detect import infer_type, refuse_flat
    from lmmclf.datasets.registry import ADAPTERS, register, registry_path

    folder = root.expanduser().resolve()
    inferred = None
    if type_name is None and name not in ADAPTERS:
        type_name, inferred = infer_type(folder)
    if type_name == "imagefolder" or (type_name is None and name == "imagefolder"):
        refuse_flat(folder)
    entry = register(name, folder, type_name)
    how = f" (inferred: {escape(inferred)})" if inferred else ""
    console.print(f"Registered [bold]{escape(entry.name)}[/] ({escape(entry.type)}{how}) at {escape(str(entry.root))} in {escape(str(registry_path()))}.")


@app.command("add-coop")
@reports_user_errors
def add_coop(
    data: Annotated[Path, typer.Argument(help="CoOp's $DATA folder (holding imagenet/, caltech-101/, ucf101/, ...).")],
    prefix: Annotated[str, typer.Option("--prefix", help="Put this before each registered name (e.g. coop- gives coop-dtd).")] = "",
) -> None:
    """Register every CoOp dataset found under one data root, each under its type name."""
    from lmmclf.datasets.coop import LAYOUTS, find_all
    from lmmclf.datasets.registry import register, registry_path
    from lmmclf.errors import DatasetError

    folder = data.expanduser().resolve()
    if not folder.is_dir():
        raise DatasetError(f"CoOp data root {folder} is not a folder.")
    found = find_all(folder)
    if not found:
        raise DatasetError(
            f"No CoOp dataset found in {folder}: expected folders such as {', '.join(l.folder for l in list(LAYOUTS.values())[:4])}, ... as CoOp's DATASETS.md lays them out."
        )
    for type_name, dataset_folder in found.items():
        entry = register(prefix + type_name, dataset_folder, type_name)
        console.print(f"Registered [bold]{escape(entry.name)}[/] ({escape(type_name)}) at {escape(str(entry.root))}.")
    missing = [name for name in LAYOUTS if name not in found]
    console.print(
        f"Found {len(found)} CoOp dataset(s) in {escape(str(folder))}"
        f"{'; not found: ' + escape(', '.join(missing)) if missing else ''}. Registry: {escape(str(registry_path()))}."
    )


@app.command("list")
@reports_user_errors
def list_datasets(json_out: JsonOpt = False) -> None:
    """Registered datasets and the built-in dataset types."""
    from rich.table import Table

    from lmmclf.datasets.registry import ADAPTERS, read_registry, registry_path

    registered = read_registry()
    if json_out:
        print_json({"registered": registered, "types": {k: v.summary for k, v in ADAPTERS.items()}})
        return
    table = Table(title=f"Registered datasets ({registry_path()})")
    for column in ("name", "type", "root"):
        table.add_column(column)
    for name, entry in sorted(registered.items()):
        table.add_row(name, str(entry.get("type", "")), str(entry.get("root", "")))
    if not registered:
        table.add_row("(none)", "", "run `lmmclf datasets add NAME --root PATH`")
    console.print(table)
    types = Table(title="Dataset types")
    types.add_column("type")
    types.add_column("layout")
    for name, adapter in ADAPTERS.items():
        types.add_row(name, adapter.summary)
    console.print(types)


@app.command("info")
@reports_user_errors
def info(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="A registered dataset; default: the config's dataset.name.")] = None,
    split: SplitOpt = None,
    classes: Annotated[bool, typer.Option("--classes", help="Show every class with its counts.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Classes, counts per split, fingerprint and skipped files of a dataset (decodes videos on first use)."""
    from lmmclf.datasets import load_dataset

    cfg, store = load(ctx, name)
    cfg = override_flags(ctx, cfg, "dataset", split=split)
    index = load_dataset(cfg, store)
    summary = summarize(index)
    if json_out:
        print_json(summary)
        return
    _print_summary(summary, classes)


@app.command("check")
@reports_user_errors
def check(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="A registered dataset; default: the config's dataset.name.")] = None,
    split: SplitOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify every file (decoding what changed since the last check, and every cached video frame); exit 1 if any file is unusable.

    A cached middle frame that is broken is extracted again from its video and reported as
    repaired; it does not make the check fail (the dataset is whole again afterwards).
    """
    from lmmclf.datasets import load_dataset

    cfg, store = load(ctx, name)
    index = load_dataset(override_flags(ctx, cfg, "dataset", split=split), store, recheck=True)
    skipped = [{"source": s.source, "reason": s.reason} for s in index.skipped]
    repaired = [{"frame": s.source, "reason": s.reason} for s in index.repaired]
    if json_out:
        print_json({"name": index.name, "items": len(index.items), "skipped": skipped, "repaired": repaired})
    else:
        for entry in skipped:
            console.print(f"  unusable {escape(str(entry['source']))}: {escape(str(entry['reason']))}", soft_wrap=True)
        for entry in repaired:
            console.print(f"  repaired {escape(str(entry['frame']))}: {escape(str(entry['reason']))}", soft_wrap=True)
        console.print(
            f"{index.name}: {len(index.items)} usable files, {len(skipped)} unusable"
            f"{f', {len(repaired)} broken cached frame(s) extracted again' if repaired else ''}."
        )
    if skipped:
        raise typer.Exit(1)


def summarize(index) -> dict:
    """What ``datasets info`` reports, as plain data."""
    per_class = [{"class": name, "train": 0, "test": 0} for name in index.class_names]
    for item in index.items:
        per_class[item.label][item.split] += 1
    counts = index.counts()
    if index.val_ids:  # the release's own val split (CoOp): part of train, reported on its own
        counts["val"] = len(index.val_ids)
        for item in index.items:
            if item.id in index.val_ids:
                per_class[item.label]["val"] = per_class[item.label].get("val", 0) + 1
    return {
        "name": index.name,
        "classes": len(index.class_names),
        "class_names": list(index.class_names),
        "counts": counts,
        "total": len(index.items),
        "fingerprint": index.fingerprint,
        "options": index.options,
        "skipped": len(index.skipped),
        "skipped_files": [{"source": s.source, "reason": s.reason} for s in index.skipped],
        "repaired_frames": [{"frame": s.source, "reason": s.reason} for s in index.repaired],
        "per_class": per_class,
    }


def _print_summary(summary: dict, show_classes: bool) -> None:
    from rich.table import Table

    counts = summary["counts"]
    options = ", ".join(f"{k}={v}" for k, v in summary["options"].items()) or "none"
    val = f" (of which {counts['val']} are the release's val split)" if "val" in counts else ""
    console.print(
        f"[bold]{summary['name']}[/]: {summary['classes']} classes, {counts['train']} train{val}, "
        f"{counts['test']} test ({summary['total']} images); skipped {summary['skipped']}; options {options}"
    )
    console.print(f"fingerprint {summary['fingerprint']}")
    if show_classes:
        table = Table()
        columns = ("#", "class", "train", *(("val",) if "val" in counts else ()), "test")
        for column in columns:
            table.add_column(column, justify="right" if column != "class" else "left")
        for i, row in enumerate(summary["per_class"]):
            table.add_row(str(i), escape(row["class"]), *(str(row.get(c, 0)) for c in columns[2:]))
        console.print(table)
    else:
        names = summary["class_names"]
        shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more; --classes lists all)" if len(names) > 10 else "")
        console.print(f"classes: {escape(shown)}")
    for skipped in summary["skipped_files"]:
        console.print(f"  skipped {escape(str(skipped['source']))}: {escape(str(skipped['reason']))}", soft_wrap=True)
