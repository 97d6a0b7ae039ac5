"""``lmmclf cache``: list, inspect, remove and garbage-collect artifacts."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lmmclf.cli.common import print_json, reports_user_errors, state
from lmmclf.cli.options import JsonOpt
from lmmclf.console import console

app = typer.Typer(help="Inspect and clean the artifact cache.", no_args_is_help=True)
KeyArg = Annotated[str, typer.Argument(help="A key or unique key prefix.")]


def _store(ctx: typer.Context):
    from lmmclf.store import ArtifactStore

    return ArtifactStore(state(ctx).cache_dir)


def _cache_command(*words: str) -> str:
    """``lmmclf [global options] cache WORDS...``, as the stage table renders every hint."""
    from lmmclf import stages

    return stages.command("cache", None, words)


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _human_age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit}"
    return f"{seconds:.0f}s"


def _model_label(spec: dict | None) -> str:
    model = (spec or {}).get("model") or {}
    if not model:
        return ""
    name = model.get("name") or model.get("model") or ""
    extra = model.get("revision") or model.get("pretrained") or (model.get("local_sha256") or "")[:8]
    return f"{name}@{extra}" if extra else str(name)


def _row(info) -> dict:
    spec = info.spec or {}
    dataset = spec.get("dataset") or {}
    return {
        "stage": info.stage,
        "key": info.key,
        "dataset": dataset.get("name", ""),
        "model": _model_label(spec),
        "items": info.items,
        "size": info.size,
        "age_s": round(time.time() - info.mtime, 1),
        "path": str(info.path),
        "complete": info.complete,
        "params": spec.get("params") or {},
        "inputs": spec.get("inputs") or {},
        **({"shapes": _shapes(info)} if info.stage == "describe" else {}),
    }


def _all_entry_rows(root) -> list[dict]:
    return (_entry_rows(root, "describe-entries", "describe-entries", "per-image answers, reused by every dataset")
            + _entry_rows(root, "embed-image-entries", "embed-image-entries", "per-image embeddings, reused by every dataset"))


def _entry_rows(root, folder: str, stage: str, label: str) -> list[dict]:
    """One row per per-image entries file of ``folder`` (results reused by any dataset with the same settings)."""
    from lmmclf.per_image import PerImageTable, entry_files

    rows = []
    for path in entry_files(root, folder):
        entries = PerImageTable(root, folder, path.stem)
        stat = path.stat()
        rows.append({"stage": stage, "key": path.stem, "dataset": "", "model": "", "items": entries.count(),
                     "size": stat.st_size, "age_s": round(time.time() - stat.st_mtime, 1), "path": str(path), "complete": True,
                     "params": {}, "inputs": {}, "label": label})
        entries.close()
    return rows


def _shapes(info) -> dict | None:
    """A describe artifact's answers per shape (list, prose, single, cut); None when it is not complete or readable."""
    from lmmclf.describe.artifact import artifact_shapes
    from lmmclf.errors import CorruptArtifactError

    if not info.complete:
        return None
    try:
        return artifact_shapes(info.path)
    except CorruptArtifactError:
        return None


def _label_params(rows: list[dict]) -> None:
    """Give each row a ``label``: the parameters that tell it from the other artifacts of its stage and dataset.

    Always the stage's headline parameters (``shown`` in the stage table: features and seeds for
    a probe), then every other parameter or input key whose value differs within the group.
    """
    from lmmclf import stages

    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["stage"], row["dataset"]), []).append(row)
    for (stage_name, _), group in groups.items():
        artifact = stages.ARTIFACTS.get(stage_name)
        shown = list(artifact.shown) if artifact else []
        names = sorted({name for row in group for name in row["params"]})
        differing = [n for n in names if n not in shown and len({repr(row["params"].get(n)) for row in group}) > 1]
        roles = sorted({role for row in group for role in row["inputs"]})
        inputs = [r for r in roles if len({row["inputs"].get(r) for row in group}) > 1]
        for row in group:
            label = stages.params_label(row["params"], [*shown, *differing])
            keys = " ".join(f"{r}={(row['inputs'].get(r) or '-')[:8]}" for r in inputs)
            shapes = " ".join(f"{shape}={count}" for shape, count in (row.get("shapes") or {}).items())
            row["label"] = " ".join(part for part in (label, keys, f"shapes: {shapes}" if shapes else "") if part)


@app.command("ls")
@reports_user_errors
def ls(
    ctx: typer.Context,
    stage: Annotated[Optional[str], typer.Option("--stage", help="Only this stage (a store folder: describe, embed-image, embed-text, prototypes, probe, finetune, trunk; embed means both embed folders).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only artifacts of this dataset (its registered name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List artifacts: stage, dataset, model, the parameters that tell them apart, key prefix, items, size, age."""
    from rich.table import Table

    from lmmclf import stages

    store = _store(ctx)
    if stage is not None and stage not in stages.ARTIFACTS and stage not in stages.STAGES:
        from lmmclf.errors import LmmclfError

        raise LmmclfError(f"Unknown stage '{stage}' for --stage (known: {', '.join(dict.fromkeys([*stages.ARTIFACTS, *stages.STAGES]))}).")
    # a command name (embed) stands for every folder it writes (embed-image, embed-text)
    folders = None if stage is None else set(stages.STAGES[stage].artifacts if stage in stages.STAGES else ()) | {stage}
    rows = [_row(info) for info in store.list() if folders is None or info.stage in folders]
    # labels are computed before the dataset filter: they are per stage and dataset anyway
    _label_params(rows)
    if folders is None:  # per-image entries are no stage's artifacts: listed with everything
        rows += _all_entry_rows(store.root)
    if dataset is not None:
        rows = [row for row in rows if row["dataset"] == dataset]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Artifacts in {store.root}")
    for column in ("stage", "dataset", "model", "params", "key", "items", "size", "age"):
        # the params cell folds rather than cuts: its end is what tells two artifacts apart
        table.add_column(column, justify="right" if column in ("items", "size", "age") else "left",
                         overflow="fold" if column == "params" else "ellipsis", min_width=12 if column == "key" else None)
    for row in rows:
        key = row["key"][:12] + ("" if row["complete"] else " (incomplete)")
        items = "" if row["items"] is None else str(row["items"])
        table.add_row(*(escape(str(cell)) for cell in (row["stage"], row["dataset"], row["model"], row["label"], key, items)),
                      _human_size(row["size"]), _human_age(row["age_s"]))
    console.print(table)
    from lmmclf.cache_gc import orphan_files

    orphans = orphan_files(store)
    if orphans:
        size = sum(path.stat().st_size for path in orphans if path.exists())
        console.print(f"{len(orphans)} weights files have no artifact ({_human_size(size)}); `{escape(_cache_command('gc'))}` removes them.")


def _attributes(ctx: typer.Context, key: str):
    """The artifact whose key starts with ``key`` and its decoded attributes."""
    store = _store(ctx)
    found = store.find(key)
    return found, store.attributes(found)


def _created(attributes: dict) -> str | None:
    """An artifact's creation time in ISO 8601, local time (None: not recorded)."""
    from datetime import datetime, timezone

    created = attributes.get("lmmclf_created")
    if not isinstance(created, (int, float)):
        return None
    return datetime.fromtimestamp(created, timezone.utc).astimezone().isoformat(timespec="seconds")


@app.command("show")
@reports_user_errors
def show(ctx: typer.Context, key: KeyArg, as_json: JsonOpt = False) -> None:
    """Full provenance of one artifact as YAML (JSON with --json): key inputs, version, creation time (ISO 8601), datasets."""
    import json

    info, attributes = _attributes(ctx, key)
    for name, value in list(attributes.items()):
        if isinstance(value, str) and name in ("lmmclf_key_inputs", "lmmclf_manifest", "lmmclf_made_with"):
            try:
                attributes[name] = json.loads(value)
            except ValueError:
                pass  # shown as stored
    if _created(attributes) is not None:
        attributes["lmmclf_created"] = _created(attributes)
    attributes["path"] = str(info.path)
    attributes = json.loads(json.dumps(attributes, default=str))  # plain types only (numpy scalars, NaN kept by json)
    if as_json:
        print_json(attributes)
        return
    import yaml

    # on stdout like `config show`: what this command is asked for, to read or to pipe
    typer.echo(yaml.safe_dump(attributes, sort_keys=False, allow_unicode=True, width=100_000), nl=False)


@app.command("info")
@reports_user_errors
def info(ctx: typer.Context, key: KeyArg, as_json: JsonOpt = False) -> None:
    """What one artifact is and what made it: stage, dataset, model, items, size, and the lmmclf, Python, torch, transformers and open_clip versions."""
    from lmmclf.artifact_meta import versions

    entry = [row for row in _all_entry_rows(_store(ctx).root) if row["key"].startswith(key)]
    if entry and len(key) >= 4:  # a per-image entries file: what it is and how many images it holds
        row = entry[0]
        if as_json:
            print_json(row)
            return
        console.print(escape(f"{row['stage']} {row['key']}\npath: {row['path']}\n{row['label']}: {row['items']} images, "
                             f"size: {_human_size(row['size'])}"), soft_wrap=True)
        return
    found, attributes = _attributes(ctx, key)
    row = {**_row(found), "created": _created(attributes), "made_with": versions(attributes)}
    if as_json:
        print_json(row)
        return
    lines = [f"{found.stage} {found.key}", f"path: {found.path}", f"dataset: {row['dataset'] or '-'}", f"model: {row['model'] or '-'}",
             f"items: {'-' if row['items'] is None else row['items']}, size: {_human_size(found.size)}, created: {row['created'] or 'not recorded'}",
             "made with: " + ", ".join(f"{name} {version}" for name, version in row["made_with"].items())]
    if row.get("shapes"):
        lines.append("answer shapes: " + ", ".join(f"{shape} {count}" for shape, count in row["shapes"].items()))
    for line in lines:
        console.print(escape(line), soft_wrap=True)


@app.command("rm")
@reports_user_errors
def rm(ctx: typer.Context, keys: Annotated[list[str], typer.Argument(help="Keys or unique key prefixes.")]) -> None:
    """Remove artifacts (and the in-progress files of their keys, unless a run is using them)."""
    from lmmclf.errors import LmmclfError

    store = _store(ctx)
    for key in keys:
        info = store.find(key)
        if store.is_busy(info.stage, info.key):
            raise LmmclfError(f"{info.stage}/{info.key[:12]} is in use by a running process; run `{_cache_command('rm', info.key[:12])}` again when it has finished.")
        _removing(store, lambda: store.remove(info), info.path)
        console.print(f"removed {escape(info.stage)}/{info.key[:12]} ({_human_size(info.size)})")


@app.command("gc")
@reports_user_errors
def gc(
    ctx: typer.Context,
    older_than_days: Annotated[Optional[float], typer.Option("--older-than", help="Also remove artifacts older than this many days.")] = None,
    max_size_gb: Annotated[Optional[float], typer.Option("--max-size", help="Also remove the oldest artifacts until the cache is under this many GB.")] = None,
    discard_progress: Annotated[bool, typer.Option("--discard-progress", help="Also remove resumable progress of stopped runs (describe journals, fine-tuning checkpoints).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed and what is kept.")] = False,
) -> None:
    """Remove leftovers of interrupted writes and, on request, old artifacts or those beyond a size budget.

    Files of running processes are never touched. Resumable progress of stopped runs (describe
    journals, fine-tuning checkpoints: hours of GPU time) is kept unless --discard-progress is given;
    --dry-run lists it with how much work each file holds.
    """
    from lmmclf.cache_gc import plan_gc

    store = _store(ctx)
    entries = plan_gc(store, older_than_days=older_than_days, max_size_bytes=None if max_size_gb is None else max_size_gb * 1e9,
                      discard_progress=discard_progress)
    freed, removed = 0, 0
    for entry in entries:
        where = escape(str(entry.path.relative_to(store.root)))
        if not entry.remove:
            console.print(f"kept {where} ({_human_size(entry.size)}, {escape(entry.reason)})")
            continue
        console.print(f"{'would remove' if dry_run else 'removed'} {where} ({_human_size(entry.size)}, {escape(entry.reason)})")
        if not dry_run:
            from lmmclf.store_files import remove_path

            _removing(store, lambda: remove_path(entry.path), entry.path)
        freed += entry.size
        removed += 1
    console.print(f"{'Would free' if dry_run else 'Freed'} {_human_size(freed)} in {removed} entries.")


def _removing(store, remove, path) -> None:
    """Run ``remove``; a read-only or unwritable cache becomes one sentence naming the folder."""
    from lmmclf.errors import storage_errno, storage_error

    try:
        remove()
    except OSError as exc:
        if storage_errno(exc) is None:
            raise
        raise storage_error(exc, path, alternative="run it where the cache can be written") from exc
