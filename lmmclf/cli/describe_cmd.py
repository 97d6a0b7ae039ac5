"""``lmmclf describe``: K descriptions of every image from an LMM (see docs/describe.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lmmclf.cli.common import load, override_flags, print_json, reports_user_errors, require_dataset
from lmmclf.cli.options import BatchSizeOpt, DatasetArg, DeviceOpt, ForceOpt, JsonOpt
from lmmclf.describe.prompts import PRESETS
from lmmclf.errors import LmmclfError

_PRESET_HELP = "; ".join(f"{name}: '{preset.text}'" for name, preset in PRESETS.items())


@reports_user_errors
def describe(
    ctx: typer.Context,
    dataset: DatasetArg = None,
    split: Annotated[Optional[str], typer.Option("--split", help="Which images: train, test or all.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N images of the split (to try things out).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="hf (local transformers model), openai (an OpenAI-compatible server) or minigpt4 (MiniGPT-4 from its parts).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="hf: hub id or local folder; openai: the served model name.")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Hub revision (pin a commit for exact reproducibility).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="auto, float16, bfloat16 or float32 (auto: float16 on GPU, float32 on CPU).")] = None,
    quantize: Annotated[Optional[str], typer.Option("--quantize", help="none, int8-torchao, int4-torchao (work with --compile; need torchao), 8bit, 4bit (bitsandbytes) or auto (from free GPU memory).")] = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Free prompt text (overrides --prompt-preset); {k} becomes K.")] = None,
    prompt_preset: Annotated[Optional[str], typer.Option("--prompt-preset", help=f"Named prompt. {_PRESET_HELP}.")] = None,
    num_descriptions: Annotated[Optional[int], typer.Option("--num-descriptions", "-k", help="K: descriptions asked for and kept per image.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help="Generation budget per image (default 300).")] = None,
    repetition_penalty: Annotated[Optional[float], typer.Option("--repetition-penalty", help="Default 1.05 (MiniGPT-4's).")] = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--greedy", help="Sample instead of greedy decoding (greedy is the default: reproducible).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Sampling temperature (with --sample).")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling threshold (with --sample).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Sampling seed (with --sample).")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="openai backend: the server's /v1 URL.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="openai backend: requests in flight.")] = None,
    compile_decoding: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="hf backend on CUDA: static KV cache + torch.compile for the decode loop (compiles once per batch shape).")] = None,
    minigpt4_vision: Annotated[Optional[str], typer.Option("--minigpt4-vision", help="minigpt4 backend: BLIP-2 checkpoint (hub id or folder) whose ViT, Q-Former and query tokens it uses (default Salesforce/blip2-flan-t5-xxl).")] = None,
    minigpt4_projection: Annotated[Optional[str], typer.Option("--minigpt4-projection", help="minigpt4 backend: MiniGPT-4's pretrained_minigpt4.pth (a file, or hf://org/repo/file).")] = None,
    require_list: Annotated[Optional[bool], typer.Option("--require-list/--any-shape", help="Count only list answers (the papers' rule); by default prose gives its sentences and a caption one description.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Ask again for every failed image, refusals and empty answers too (a plain rerun retries only passing failures: greedy decoding repeats an answer).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: describe only items I, I+N, ... (0 <= I < N); run N of these anywhere sharing the cache.")] = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Prompt an LMM with every image and store its parsed descriptions (resumable, cached).

    With --force, the images of this run (its shard's, with --shard) are described again even when
    the artifact holds them; the old artifact stays until the new one replaces it, and an interrupted
    forced run resumes when the same command is run again.
    """
    from lmmclf.datasets import load_dataset
    from lmmclf.describe import parse_shard, run_describe
    from lmmclf.describe.runner import nothing_usable

    cfg, store = load(ctx, dataset)
    require_dataset(cfg)
    cfg = override_flags(
        ctx, cfg, "describe", split=split, limit=limit, backend=backend, model=model, revision=revision, dtype=dtype,
        quantize=quantize, batch_size=batch_size, device=device, prompt=prompt, prompt_preset=prompt_preset,
        num_descriptions=num_descriptions, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
        sample=sample, temperature=temperature, top_p=top_p, seed=seed, base_url=base_url, concurrency=concurrency,
        compile=compile_decoding, minigpt4_vision=minigpt4_vision, minigpt4_projection=minigpt4_projection,
        require_list=require_list,
    )
    shard_range = parse_shard(shard)
    index = load_dataset(cfg, store)
    summary = run_describe(cfg, index, store, shard=shard_range, retry_command=same_command(ctx), force=force,
                           show_summary=not json_output, retry_failed=retry_failed)
    if json_output:
        print_json(summary.to_dict())
    problem = nothing_usable(summary)
    if problem:  # every image failed: exit 1, so scripts and later stages do not take it for a result
        raise LmmclfError(problem)


def same_command(ctx: typer.Context) -> str:
    """The command line that retries this one: global options and the arguments and options given
    (not --json, --force or --retry-failed: a plain retry redoes only the passing failures)."""
    from lmmclf import stages

    words: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        # compared by name: typer may bring its own copy of click, whose classes are not click's
        source = getattr(ctx.get_parameter_source(param.name), "name", None)
        if value is None or param.name in ("json_output", "force", "retry_failed") or source != "COMMANDLINE":
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
        elif getattr(param, "is_flag", False):
            if param.secondary_opts:
                words.append(max(param.opts, key=len) if value else max(param.secondary_opts, key=len))
            elif value:
                words.append(max(param.opts, key=len))
        else:
            words += [max(param.opts, key=len), str(value)]
    return stages.command(ctx.info_name or "describe", None, words)
