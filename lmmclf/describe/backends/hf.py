"""The ``hf`` backend: a local Hugging Face image-text-to-text model, batched.

Loads any model ``AutoModelForImageTextToText`` knows (LLaVA-1.5, InstructBLIP, ...) from a
hub id or a local folder, with ``AutoProcessor``. Batched generation pads on the LEFT (right
padding gives garbage with LLaVA: LLaVA #1149, #1305): each image is encoded alone by the
processor and the batch is assembled by :mod:`hf_inputs` (ids left-padded, the Q-Former's
right-padded, tiling processors' crop axis zero-padded; no second BOS), which makes every
row's output identical to a one-image-at-a-time run under greedy decoding (tested per model
family in tests/test_describe_families.py). Encoder-decoder language models (BLIP-2 and
InstructBLIP on Flan-T5) return only new tokens from ``generate``; decoder-only ones return
the prompt too.

Choices (see docs/describe.md): ``--dtype auto`` = float16 on a GPU, float32 on the CPU;
``--quantize auto`` = the widest of fp16 / 8-bit / 4-bit that fits the GPU's free memory, in
torchao's compile-friendly schemes when torchao is installed (none on the CPU; :mod:`quantization`);
``--batch-size 0`` = from free memory after loading, so quantized weights leave room for a larger
batch (8 on the CPU).
"""

from __future__ import annotations

from typing import Any

from lmmclf.describe.backends import hf_inputs, quantization
from lmmclf.describe.backends.base import Backend, Job
from lmmclf.describe.backends.local_batch import LocalBatching
from lmmclf.devices import resolve_device, torch_dtype
from lmmclf.errors import LmmclfError
from lmmclf.image_read import read_rgb
from lmmclf.models import require_hub_model, resolve_model_ref

CPU_BATCH_SIZE = 8  # small and fixed: CPU throughput barely grows beyond this
MAX_AUTO_BATCH = 64  # beyond this HF generate gains little and a failure loses more work
_PROMPT_TOKENS = 64  # allowance for chat template + prompt when sizing the KV cache

def auto_batch_size(text_config: Any, image_tokens: int, max_new_tokens: int, free_bytes: int, element_bytes: int,
                    cross_attention_tokens: int = 0) -> int:
    """Images per batch whose KV cache (plus 50% for activations) fits in 85% of ``free_bytes``.

    Args:
        text_config: the language model's config (layers, heads, hidden size).
        image_tokens: tokens one image takes in the language model's sequence.
        max_new_tokens: the generation budget.
        free_bytes: free GPU memory after loading the weights (quantized weights leave more).
        element_bytes: bytes per KV-cache element (2 for fp16).
        cross_attention_tokens: vision states one image gives each cross-attention layer
            (Mllama: every tile's patches), cached there instead of a sequence.
    """
    layers = text_config.num_hidden_layers
    heads = text_config.num_attention_heads
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
    cross_layers = len(getattr(text_config, "cross_attention_layers", None) or ()) if cross_attention_tokens else 0
    sequence = image_tokens + _PROMPT_TOKENS + max_new_tokens
    cached_tokens = (layers - cross_layers) * sequence + cross_layers * cross_attention_tokens
    per_image = 2 * kv_heads * head_dim * cached_tokens * element_bytes * 1.5
    return int(max(1, min(MAX_AUTO_BATCH, 0.85 * free_bytes // per_image)))


def cross_attention_tokens(config: Any) -> int:
    """Vision states one image gives each cross-attention layer (Mllama: tiles x (patches + class token)); 0 for other models."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    vision = getattr(config, "vision_config", None)
    if not getattr(text_config, "cross_attention_layers", None) or vision is None:
        return 0
    patches = (vision.image_size // vision.patch_size) ** 2 + 1
    return int(getattr(vision, "max_num_tiles", 1) * patches)


def _image_tokens(config) -> int:
    """A config's guess of one image's tokens, for processors that cannot encode a probe image."""
    for name in ("image_seq_length", "num_query_tokens"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return 576


class HFBackend(LocalBatching, Backend):
    """A transformers image-text-to-text model run locally.

    Args:
        section: the describe config section.
        prompt: the resolved prompt text.
        generate_overrides: extra ``generate`` arguments (the benchmark forces ``min_new_tokens``).
    """

    name = "hf"
    # describe backend options it reads (lmmclf.config, backend=True); dtype and quantize enter the key
    reads = ("revision", "dtype", "quantize", "device", "batch_size", "compile")

    @classmethod
    def key_parts(cls, section: Any, hashes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Model identity (hub id + revision, or a hash of a local folder) and the load options.

        dtype and quantization change the generated text, so they are in the key, as
        configured (``auto`` stays ``auto``): the key must be computable on any machine,
        e.g. by ``embed`` on a CPU-only host, and cannot depend on which GPU resolved it.
        """
        identity = resolve_model_ref(section.model, section.revision, hashes, what="describe.model",
                                     extra_files={"chat_template_sha256": "chat_template.jinja"}).identity
        return identity, {
            "dtype": section.dtype,
            "quantize": section.quantize,
        }

    def __init__(self, section: Any, prompt: str, generate_overrides: dict[str, Any] | None = None):
        super().__init__(section, prompt)
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        self.device = resolve_device(section.device, mps=False)  # the dtype/quantization rules know CUDA and CPU only
        self.dtype = torch_dtype(section.dtype, self.device)
        # a local folder that moved is one sentence naming it here, never a hub download
        ref = resolve_model_ref(section.model, section.revision, None, what="describe.model", load=True)
        if ref.kind == "hub":  # not cached and no network: one sentence now, not a minute of retries
            require_hub_model(ref.name, section.revision, "describe.model")
        model_name = ref.load_name
        load = {"revision": section.revision}
        try:
            config = AutoConfig.from_pretrained(model_name, **load)
            self.processor = AutoProcessor.from_pretrained(model_name, **load)
        except (OSError, ValueError) as exc:
            raise LmmclfError(f"Cannot load describe.model '{section.model}': {exc}") from exc
        self.quantize = quantization.pick_quantization(section.quantize, self.device, config, section.model,
                                                       lambda: quantization.parameter_count(config, AutoModelForImageTextToText))
        if section.compile:  # refused before minutes of loading weights, not after
            if not self.device.startswith("cuda"):
                raise LmmclfError("describe.compile needs a CUDA device; on the CPU pass --no-compile.")
            quantization.check_compile(self.quantize)
        self.dtype = quantization.compute_dtype(self.quantize, section.dtype, self.dtype)
        kwargs: dict[str, Any] = {"dtype": self.dtype, **load}
        quantization_config = quantization.transformers_config(self.quantize, self.dtype)
        if quantization_config is not None:
            kwargs["quantization_config"] = quantization_config
        if self.device.startswith("cuda"):
            # "cuda" spreads a model over all visible GPUs when one is not enough
            kwargs["device_map"] = "auto" if self.device == "cuda" else {"": self.device}
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(model_name, **kwargs)
        except (OSError, ValueError) as exc:
            raise LmmclfError(f"Cannot load describe.model '{section.model}': {exc}") from exc
        if "device_map" not in kwargs:
            self.model.to(self.device)
        self.model.eval()
        self.input_device = self.model.device
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))
        self.text = hf_inputs.prompt_text(self.processor, prompt)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        # BLIP-2/InstructBLIP on Flan-T5: generate returns the decoder's start token and new tokens only
        self.encoder_decoder = bool(getattr(text_config, "is_encoder_decoder", False))
        self.generate_kwargs = self._generate_kwargs(section, generate_overrides or {})
        self._batch_size = section.batch_size or self._auto_batch_size(config)
        self._torch = torch

    # -- set-up ------------------------------------------------------------------------
    def _auto_batch_size(self, config) -> int:
        if not self.device.startswith("cuda"):
            return CPU_BATCH_SIZE
        import torch

        torch.cuda.empty_cache()  # blocks cached while loading (e.g. fp16 weights before quantization) are free to use
        free, _ = torch.cuda.mem_get_info(self.input_device)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config.text_config
        element = 2 if self.dtype in (torch.float16, torch.bfloat16) else 4
        try:  # count from what the processor makes of a large photo: tiles and dynamic resolution included
            tokens = max(0, hf_inputs.image_tokens(self.processor, self.text) - _PROMPT_TOKENS)
        except Exception:  # noqa: BLE001 - a processor that cannot encode a probe falls back to the config's guess
            tokens = _image_tokens(config)
        return auto_batch_size(text_config, tokens, self.section.max_new_tokens, free, element, cross_attention_tokens(config))

    def _generate_kwargs(self, section: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": section.max_new_tokens,
            "repetition_penalty": section.repetition_penalty,
            "do_sample": section.sample,
            "pad_token_id": self.pad_id,
        }
        if section.sample:
            kwargs.update(temperature=section.temperature, top_p=section.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)  # silence sampling defaults of the model's config
        if section.compile:  # checked before loading (__init__)
            # A static cache makes transformers compile the decode step (CUDA graphs): eager
            # decoding of a 13B model is bound by kernel launches, not by the GPU (docs/describe.md).
            kwargs["cache_implementation"] = "static"
        kwargs.update(overrides)
        return kwargs

    ANSWER_SETTINGS = ("dtype", "quantize")  # "auto" resolves per machine: a 24 GB card's int8 is not an 80 GB card's fp16

    def resolved(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "quantize": self.quantize,
            "batch_size": self._batch_size,
            "prompt_text": self.text,
        }

    # -- the batch ---------------------------------------------------------------------
    def _prepare(self, job: Job) -> dict[str, Any]:
        return self._encode(job)

    def _generate_batch(self, encodings: list[dict[str, Any]]) -> list[tuple[str, int, bool]]:
        return self._generate_rows(encodings)

    def _encode(self, job: Job) -> dict[str, Any]:
        return hf_inputs.encode(self.processor, read_rgb(job.path), self.text)

    def _generate(self, encodings: list[dict[str, Any]]) -> list[tuple[str, int]]:
        """(answer, generated tokens) per encoding, in order."""
        return [(text, count) for text, count, _ in self._generate_rows(encodings)]

    def _generate_rows(self, encodings: list[dict[str, Any]]) -> list[tuple[str, int, bool]]:
        """(answer, generated tokens, truncated: no end token came) per encoding, in order."""
        torch = self._torch
        batch = self._collate(encodings)
        if self.section.sample:
            torch.manual_seed(self.section.seed)  # per batch: a resumed run repeats the same draws
        with torch.inference_mode():
            output = self.model.generate(**batch, **self.generate_kwargs)
        # decoder-only models return the (left-padded) prompt first; encoder-decoders its start token
        prompt = 1 if self.encoder_decoder else batch["input_ids"].shape[1]
        answers = []
        for row in output[:, prompt:].tolist():
            end = next((i + 1 for i, token in enumerate(row) if token in self.eos_ids), None)
            count = end or len(row)
            text = self.processor.tokenizer.decode(row[:count], skip_special_tokens=True).strip()
            answers.append((text, count, end is None))
        return answers

    def _collate(self, encodings: list[dict[str, Any]]) -> dict[str, Any]:
        """One batch from per-image encodings (:func:`hf_inputs.collate`), on the model's device and dtype."""
        batch = hf_inputs.collate(self.processor, encodings, self.pad_id)
        for key, value in batch.items():
            if isinstance(value, self._torch.Tensor):
                value = value.to(self.dtype) if value.is_floating_point() else value
                batch[key] = value.to(self.input_device)
        return batch

    def close(self) -> None:
        self.model = None
