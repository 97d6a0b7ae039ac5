"""``lmmclf embed``: CLIP embeddings of the images and of their LMM descriptions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lmmclf.cli.common import load, override_flags, print_json, reports_user_errors, require_dataset
from lmmclf.cli.options import BatchSizeOpt, DatasetArg, DeviceOpt, ForceOpt, JsonOpt
from lmmclf.console import console


@reports_user_errors
def embed(
    ctx: typer.Context,
    dataset: DatasetArg = None,
    clip_model: Annotated[Optional[str], typer.Option("--clip-model", help="open_clip name (ViT-L-14-quickgelu), hf-hub:org/repo, local-dir:/path, or a folder holding open_clip_config.json (read as local-dir:).")] = None,
    clip_pretrained: Annotated[Optional[str], typer.Option("--clip-pretrained", help="Pretrained tag (openai) or a local checkpoint file.")] = None,
    images_only: Annotated[bool, typer.Option("--images-only", help="Only the image embeddings (no describe artifact needed): enough for the image probe and zero-shot.")] = False,
    batch_size: BatchSizeOpt = None,
    num_workers: Annotated[Optional[int], typer.Option("--num-workers", help="DataLoader workers decoding images (default 2).")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="auto (fp16 autocast on GPU, fp32 on CPU), fp32, fp16, bf16.")] = None,
    storage_dtype: Annotated[Optional[str], typer.Option("--storage-dtype", help="float32 (default) or float16 (half the disk).")] = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed every covered image and every description with CLIP, and average each image's descriptions.

    Image embeddings do not depend on the LMM and are shared by every describe variant; the text
    embeddings read the describe artifact named by the config (`lmmclf describe DATASET` makes it).
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.embed.run import run_embed

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    cfg = override_flags(
        ctx, cfg, "embed", clip_model=clip_model, clip_pretrained=clip_pretrained, batch_size=batch_size, num_workers=num_workers,
        precision=precision, storage_dtype=storage_dtype, device=device,
    )
    index = load_dataset(cfg, store, show_progress=not console.quiet)
    report = run_embed(cfg, index, store, texts=not images_only, force=force)
    summary = {
        "dataset": index.name,
        "images": report.images,
        "image_errors": report.image_errors,
        "images_reused": report.images_reused,
        "image_key": report.image_key,
        "described_items": report.texts,
        "descriptions": report.descriptions,
        "items_without_text": report.items_without_text,
        "text_key": report.text_key,
        "computed": report.computed,
    }
    if as_json:
        print_json(summary)
        return
    cached = "" if report.computed else " (all cached)"
    reused = f" ({report.images_reused} copied from images embedded before)" if report.images_reused else ""
    console.print(f"[green]Embedded[/] {report.images} images [dim]{(report.image_key or '')[:12]}[/]{cached}{reused}")
    if report.text_key:
        console.print(f"[green]Embedded[/] {report.descriptions} descriptions of {report.texts} images [dim]{report.text_key[:12]}[/]")
    if report.image_errors:
        console.print(f"[yellow]{report.image_errors} images could not be read[/] (zero rows, left out of every method).")
    if report.items_without_text:
        console.print(f"[yellow]{report.items_without_text} of {report.texts} images have no valid description[/]: their text features are zero, "
                      f"and methods that use descriptions refuse when more than {cfg.embed.max_missing_descriptions:.0%} of the train or "
                      "test images lack them (embed.max_missing_descriptions).", soft_wrap=True)
