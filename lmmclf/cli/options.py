"""Options shared by several commands, declared once as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

DatasetArg = Annotated[
    Optional[str],
    typer.Argument(help="A registered dataset (ucf101, era, bar, or one added with `lmmclf datasets add`); default: the config's dataset.name."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable results as JSON on stdout.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="torch device: auto, cpu, cuda, cuda:1 ...")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if the artifact is cached.")]
SeedsOpt = Annotated[Optional[str], typer.Option("--seeds", help="Comma-separated seeds, e.g. 0,1,2; results are reported as mean and std.")]
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Batch size.")]
