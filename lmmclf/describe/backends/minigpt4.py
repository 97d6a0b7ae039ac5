"""The ``minigpt4`` backend: MiniGPT-4 (Vicuna v0), the papers' LMM, assembled from its released parts.

The parts (docs/describe.md): ``describe.model`` the Vicuna LLM (``LlamaForCausalLM`` and its
sentencepiece ``tokenizer.model``), ``describe.minigpt4_vision`` a BLIP-2 checkpoint of which
only the vision model, Q-Former and query tokens are read (:mod:`.minigpt4_parts`), and
``describe.minigpt4_projection`` MiniGPT-4's ``pretrained_minigpt4.pth`` (``llama_proj``).

What follows MiniGPT-4's own code (Vision-CAIR/MiniGPT-4):

- preprocessing: ``Blip2ImageEvalProcessor`` (a square bicubic resize to the ViT's size, CLIP
  mean and std);
- image embeddings: ``MiniGPT4.encode_img`` (ViT + ``ln_vision``, Q-Former over the query
  tokens, ``llama_proj``), the ViT and Q-Former in fp16 on a GPU (``vit_precision: fp16`` and
  its fp16 autocast);
- the prompt: ``CONV_VISION_Vicuna0`` with ``Chat.upload_img`` + ``Chat.ask``, embedded by
  ``get_context_emb``: split at ``<ImageHere>``, BOS only before the first segment, each segment
  tokenized by the slow (sentencepiece) Llama tokenizer;
- generation: ``Chat.answer_prepare`` (``inputs_embeds``, ``min_length=1``, ``num_beams=1``,
  the context cut to 2000 - max_new_tokens) and demo.py's stop on the ``###`` tokens; the answer
  is decoded and cut at ``###`` and after ``Assistant:``.

Unlike MiniGPT-4's stopping criterion (which stops a batch only when every row ends in
``###``), the stop here is per row, and rows are left-padded with an attention mask, so batch N
gives each image the tokens one-at-a-time decoding gives it (tested against a reference).
"""

from __future__ import annotations

from typing import Any

from transformers import (
    StoppingCriteria,  # this module is imported only when the backend is used
)

from lmmclf.describe.backends import quantization
from lmmclf.describe.backends.base import Backend, Job
from lmmclf.describe.backends.local_batch import LocalBatching
from lmmclf.devices import resolve_device, torch_dtype
from lmmclf.errors import ConfigError, LmmclfError
from lmmclf.image_read import read_rgb
from lmmclf.models import require_hub_model, resolve_model_ref

# CONV_VISION_Vicuna0 (minigpt4/conversation/conversation.py), one image then the prompt:
# system + sep, "Human: " + "<Img><ImageHere></Img>" + " " + prompt + sep, "Assistant: ".
SYSTEM = ("Give the following image: <Img>ImageContent</Img>. "
          "You will be able to see the image once I provide it to you. Please answer my questions.")
SEP = "###"
IMAGE_HERE = "<ImageHere>"
MAX_LENGTH = 2000  # Chat.answer_prepare's max_length: older context is cut beyond it
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # BlipImageBaseProcessor's
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAMPLING_TOP_K = 50  # transformers' default when MiniGPT-4 was released (it passes none); v5's default is None
LLAVA_DEFAULT = "llava-hf/llava-1.5-13b-hf"  # describe.model's default, which is not a Vicuna


def conversation(prompt: str) -> str:
    """MiniGPT-4's prompt around one image and ``prompt`` (``Conversation.get_prompt``, SINGLE style)."""
    return f"{SYSTEM}{SEP}Human: <Img>{IMAGE_HERE}</Img> {prompt}{SEP}Assistant: "


def stop_sequences(piece_to_id, unk_id: int) -> list[list[int]]:
    """The token sequences spelling ``###``: demo.py's ``[[835], [2277, 29937]]`` for LLaMA's vocabulary."""
    stops = []
    for pieces in (["###"], ["##", "#"]):
        ids = [piece_to_id(piece) for piece in pieces]
        if unk_id not in ids:
            stops.append(ids)
    return stops


def clean_answer(text: str) -> str:
    """``Chat.answer``'s cut: before the first ``###``, after the last ``Assistant:``."""
    return text.split(SEP)[0].split("Assistant:")[-1].strip()


class MiniGPT4Backend(LocalBatching, Backend):
    """MiniGPT-4 run locally from its three parts.

    Args:
        section: the describe config section.
        prompt: the resolved prompt text.
        generate_overrides: extra ``generate`` arguments.
    """

    name = "minigpt4"
    # describe backend options it reads (lmmclf.config, backend=True); dtype and quantize apply to the LLM
    reads = ("revision", "dtype", "quantize", "device", "batch_size", "minigpt4_vision", "minigpt4_projection")

    @classmethod
    def key_parts(cls, section: Any, hashes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The three parts' identities (hub id + revision, or a hash of the local files) and the load options."""
        _check_settings(section)
        llm = resolve_model_ref(section.model, section.revision, hashes, what="describe.model").identity
        vision = resolve_model_ref(section.minigpt4_vision, None, hashes, what="describe.minigpt4_vision").identity
        from lmmclf.describe.backends.minigpt4_parts import parse_hub_file

        if parse_hub_file(section.minigpt4_projection):
            projection = {"name": section.minigpt4_projection, "revision": "main"}
        else:
            projection = resolve_model_ref(section.minigpt4_projection, None, hashes, what="describe.minigpt4_projection",
                                           local=True).identity
        return {**llm, "minigpt4_vision": vision, "minigpt4_projection": projection}, {
            "dtype": section.dtype,
            "quantize": section.quantize,
        }

    def __init__(self, section: Any, prompt: str, generate_overrides: dict[str, Any] | None = None):
        super().__init__(section, prompt)
        import torch

        from lmmclf.describe.backends import minigpt4_parts as parts

        _check_settings(section)
        self._torch = torch
        self.device = resolve_device(section.device, mps=False)
        self.dtype = torch_dtype(section.dtype, self.device)
        # MiniGPT-4 runs the ViT (and, under its fp16 autocast, the Q-Former and llama_proj) in fp16 on a GPU
        self.vision_dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        vision_ref = resolve_model_ref(section.minigpt4_vision, None, None, what="describe.minigpt4_vision", load=True)
        if vision_ref.kind == "hub":
            require_hub_model(vision_ref.name, None, "describe.minigpt4_vision")
        self.vision, self.qformer, query_tokens, blip2 = parts.load_vision_parts(vision_ref.load_name, vision_ref.kind == "local")
        self.image_size = blip2.vision_config.image_size
        self._load_llm(section)
        hidden = self.model.config.hidden_size
        projection = parts.load_projection(parts.projection_file(section.minigpt4_projection), blip2.qformer_config.hidden_size, hidden)
        self.vision_device = self.model.get_input_embeddings().weight.device
        self.vision.to(self.vision_device, self.vision_dtype)
        self.qformer.to(self.vision_device, self.vision_dtype)
        self.projection = projection.to(self.vision_device, self.vision_dtype)
        self.query_tokens = query_tokens.to(self.vision_device, self.vision_dtype)
        self.num_query_tokens = query_tokens.shape[1]
        self.text = conversation(prompt)
        before, after = self.text.split(IMAGE_HERE)
        # get_context_emb: BOS only before the first segment; the same ids for every image of the run
        self.before_ids = [self.sp.bos_id()] + self.sp.encode(before)
        self.after_ids = self.sp.encode(after)
        self.stops = stop_sequences(self.sp.piece_to_id, self.sp.unk_id())
        self.eos_id = self.sp.eos_id()
        self.generate_kwargs = self._generate_kwargs(section, generate_overrides or {})
        self._batch_size = section.batch_size or self._auto_batch_size()

    # -- set-up ------------------------------------------------------------------------
    def _load_llm(self, section: Any) -> None:
        import sentencepiece
        from transformers import AutoConfig, AutoModelForCausalLM

        ref = resolve_model_ref(section.model, section.revision, None, what="describe.model", load=True)
        if ref.kind == "hub":
            require_hub_model(ref.name, section.revision, "describe.model")
        try:
            config = AutoConfig.from_pretrained(ref.load_name, revision=section.revision)
            if ref.kind == "local":
                tokenizer_file = ref.path / "tokenizer.model"
            else:
                from huggingface_hub import hf_hub_download

                tokenizer_file = hf_hub_download(ref.name, "tokenizer.model", revision=section.revision)
            # the slow LlamaTokenizer MiniGPT-4 uses (use_fast=False) is this sentencepiece model
            self.sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_file))
        except (OSError, ValueError) as exc:
            raise LmmclfError(f"Cannot load describe.model '{section.model}' (a Vicuna v0 folder with tokenizer.model): {exc}") from exc
        self.quantize = quantization.pick_quantization(section.quantize, self.device, config, section.model,
                                                       lambda: quantization.parameter_count(config, AutoModelForCausalLM))
        self.dtype = quantization.compute_dtype(self.quantize, section.dtype, self.dtype)
        kwargs: dict[str, Any] = {"dtype": self.dtype, "revision": section.revision}
        quantization_config = quantization.transformers_config(self.quantize, self.dtype)
        if quantization_config is not None:
            kwargs["quantization_config"] = quantization_config
        if self.device.startswith("cuda"):
            kwargs["device_map"] = "auto" if self.device == "cuda" else {"": self.device}
        try:
            self.model = AutoModelForCausalLM.from_pretrained(ref.load_name, **kwargs)
        except (OSError, ValueError) as exc:
            raise LmmclfError(f"Cannot load describe.model '{section.model}': {exc}") from exc
        if "device_map" not in kwargs:
            self.model.to(self.device)
        self.model.eval()

    def _auto_batch_size(self) -> int:
        from lmmclf.describe.backends.hf import CPU_BATCH_SIZE, auto_batch_size

        if not self.device.startswith("cuda"):
            return CPU_BATCH_SIZE
        torch = self._torch
        torch.cuda.empty_cache()  # blocks cached while loading (e.g. fp16 weights before quantization) are free to use
        free, _ = torch.cuda.mem_get_info(self.vision_device)
        element = 2 if self.dtype in (torch.float16, torch.bfloat16) else 4
        return auto_batch_size(self.model.config, self.num_query_tokens, self.section.max_new_tokens, free, element)

    def _generate_kwargs(self, section: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        from transformers import StoppingCriteriaList

        kwargs: dict[str, Any] = {
            "max_new_tokens": section.max_new_tokens,
            "stopping_criteria": StoppingCriteriaList([StopOnSequences(self.stops)]),
            "num_beams": 1,
            "min_length": 1,
            "do_sample": section.sample,
            "repetition_penalty": section.repetition_penalty,
            "eos_token_id": self.eos_id,
            "pad_token_id": self.eos_id,  # only fills rows that already stopped; never decoded
        }
        if section.sample:  # Chat.answer_prepare's sampling
            kwargs.update(temperature=float(section.temperature), top_p=section.top_p, top_k=SAMPLING_TOP_K)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        kwargs.update(overrides)
        return kwargs

    ANSWER_SETTINGS = ("dtype", "vision_dtype", "quantize")  # "auto" resolves per machine: a 24 GB card's int8 is not an 80 GB card's fp16

    def resolved(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "vision_dtype": str(self.vision_dtype).replace("torch.", ""),
            "quantize": self.quantize,
            "batch_size": self._batch_size,
            "prompt_text": self.text,
        }

    # -- the batch ---------------------------------------------------------------------
    def _prepare(self, job: Job):
        return self.preprocess(job)

    def _generate_batch(self, pixels: list[Any]) -> list[tuple[str, int, bool]]:
        return self._generate(pixels)

    def preprocess(self, job: Job):
        """``Blip2ImageEvalProcessor``: bicubic resize to a square, to [0, 1], CLIP mean and std."""
        import numpy as np
        from PIL import Image

        torch = self._torch
        rgb = read_rgb(job.path).resize((self.image_size, self.image_size), Image.BICUBIC)
        array = np.asarray(rgb, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).permute(2, 0, 1)
        mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
        return (tensor - mean) / std

    def image_embeddings(self, pixels):
        """``MiniGPT4.encode_img``: ViT + ln_vision, the Q-Former over the query tokens, llama_proj."""
        image_embeds = self.vision(pixel_values=pixels.to(self.vision_device, self.vision_dtype)).last_hidden_state
        mask = self._torch.ones(image_embeds.shape[:-1], dtype=self._torch.long, device=image_embeds.device)
        query = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        output = self.qformer(query_embeds=query, encoder_hidden_states=image_embeds, encoder_attention_mask=mask).last_hidden_state
        return self.projection(output.to(self.vision_dtype))

    def _generate(self, pixels: list[Any]) -> list[tuple[str, int, bool]]:
        return self.generate_rows(self.context_embeddings(pixels))

    def context_embeddings(self, pixels: list[Any], after_ids: list[list[int]] | None = None) -> list[Any]:
        """``get_context_emb`` per image: the text before ``<ImageHere>``, the image, the text after.

        ``after_ids`` (one list per image) replaces the prompt's tail: tests use it to make rows
        of different lengths; a run's rows all share one prompt.
        """
        torch = self._torch
        embed = self.model.get_input_embeddings()
        device = embed.weight.device
        after_ids = after_ids or [self.after_ids] * len(pixels)
        with torch.inference_mode():
            images = self.image_embeddings(torch.stack(pixels)).to(device, embed.weight.dtype)
            before = embed(torch.tensor([self.before_ids], device=device))[0]
            return [torch.cat([before, image, embed(torch.tensor([ids], device=device))[0]]) for image, ids in zip(images, after_ids)]

    def generate_rows(self, rows: list[Any]) -> list[tuple[str, int, bool]]:
        """Generate from per-image context embeddings, left-padded into one batch."""
        torch = self._torch
        with torch.inference_mode():
            inputs, mask = self._left_pad(rows)
            if self.section.sample:
                torch.manual_seed(self.section.seed)  # per batch: a resumed run repeats the same draws
            output = self.model.generate(inputs_embeds=inputs, attention_mask=mask, **self.generate_kwargs)
        return [self._answer(row) for row in output.tolist()]

    def _left_pad(self, rows: list[Any]):
        """One left-padded batch (and its mask) from per-image embeddings, cut as Chat.answer_prepare cuts."""
        torch = self._torch
        keep = MAX_LENGTH - self.section.max_new_tokens
        rows = [row[max(0, row.shape[0] - keep):] for row in rows]
        length = max(row.shape[0] for row in rows)
        inputs = rows[0].new_zeros((len(rows), length, rows[0].shape[-1]))
        mask = torch.zeros((len(rows), length), dtype=torch.long, device=rows[0].device)
        for i, row in enumerate(rows):
            inputs[i, length - row.shape[0]:] = row
            mask[i, length - row.shape[0]:] = 1
        return inputs, mask

    def _answer(self, tokens: list[int]) -> tuple[str, int, bool]:
        """(text, tokens up to and including the stop, no stop came): decoded and cut as Chat.answer does."""
        for i, token in enumerate(tokens):
            if token == self.eos_id or any(tokens[max(0, i + 1 - len(s)):i + 1] == s for s in self.stops):
                return clean_answer(self.sp.decode(tokens[:i + 1])), i + 1, False
        return clean_answer(self.sp.decode(tokens)), len(tokens), True

    def close(self) -> None:
        self.model = self.vision = self.qformer = self.projection = None


class StopOnSequences(StoppingCriteria):
    """Per-row stop when a row's last tokens are one of ``stops`` (demo.py's ``StoppingCriteriaSub``, row by row)."""

    def __init__(self, stops: list[list[int]]):
        super().__init__()
        self.stops = stops

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for stop in self.stops:
            if input_ids.shape[1] >= len(stop):
                done |= (input_ids[:, -len(stop):] == torch.tensor(stop, device=input_ids.device)).all(dim=1)
        return done


def _check_settings(section: Any) -> None:
    """One sentence for a missing part, before any key is computed or weight loaded."""
    if not section.minigpt4_projection:
        raise ConfigError("describe.minigpt4_projection is not set: the minigpt4 backend needs MiniGPT-4's checkpoint "
                          "(pretrained_minigpt4.pth; --minigpt4-projection FILE or hf://org/repo/file).")
    if section.model == LLAVA_DEFAULT:
        raise ConfigError("describe.model is LLaVA-1.5 (the hf backend's default); the minigpt4 backend needs a Vicuna v0 "
                          "LLM: set --model to its folder or hub id (docs/describe.md).")
