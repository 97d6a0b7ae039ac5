"""``lmmclf demo``: build the offline demo's data, tiny models and config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lmmclf.cli.common import print_json, reports_user_errors
from lmmclf.cli.options import JsonOpt
from lmmclf.console import console, stdout_to_stderr


@reports_user_errors
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo's data, models and config.")] = Path("demo-out"),
    epochs: Annotated[int, typer.Option(help="Epochs for probe and finetune in the demo config.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Build an offline plumbing demo: generated images, tiny random LMM and CLIP, and demo.yaml.

    The models are randomly initialised (no download), so the pipeline's numbers mean nothing;
    `bash examples/demo.sh` builds the demo and runs every stage on it.
    """
    from lmmclf.demo import prepare_demo

    # the tokenizer trainer and model savers print to stdout, which belongs to --json
    with console.status("Building the demo's images and tiny models..."), stdout_to_stderr():
        assets = prepare_demo(out, epochs=epochs)
    if as_json:
        print_json({"config": str(assets.config), "data": str(assets.data), "lmm": str(assets.lmm), "clip": assets.clip})
        return
    console.print(f"Demo ready: config [bold]{escape(str(assets.config))}[/] (tiny random models: a plumbing demo, not accuracy).")
    # where the models are, so a user can point --set describe.model / embed.clip_model at them
    console.print(f"  tiny LMM:  {escape(str(assets.lmm))}   (describe.model)", soft_wrap=True)
    console.print(f"  tiny CLIP: {escape(assets.clip)}   (embed.clip_model)", soft_wrap=True)
    console.print(f"  images:    {escape(str(assets.data))}", soft_wrap=True)
    from lmmclf import stages

    # the demo's own config, with the cache given to this command (if any)
    first = stages.command("describe", options=dataclasses.replace(stages.invocation.get(), config_path=assets.config))
    console.print(f"Next: {escape(first)}   (then embed, prototypes, probe, finetune, eval)")
