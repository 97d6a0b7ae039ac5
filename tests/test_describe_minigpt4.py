"""The minigpt4 backend on tiny random parts, checked against a reference written from MiniGPT-4's code."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("sentencepiece")

from lmmclf.cli.app import app  # noqa: E402
from lmmclf.config import ExperimentConfig  # noqa: E402
from lmmclf.describe.backends.base import Job  # noqa: E402
from lmmclf.errors import LmmclfError  # noqa: E402
from lmmclf.testing.images import write_image  # noqa: E402
from lmmclf.testing.tiny_minigpt4 import make_tiny_blip2, make_tiny_projection, make_tiny_vicuna  # noqa: E402

PROMPT = "Give 10 semantic descriptions of the image"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-minigpt4")
    return {"model": str(make_tiny_vicuna(root / "vicuna")), "minigpt4_vision": str(make_tiny_blip2(root / "blip2")),
            "minigpt4_projection": str(make_tiny_projection(root / "pretrained_minigpt4.pth"))}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(32, 32), (40, 24), (64, 64), (20, 36)]):  # mixed sizes: all resized to the ViT's
        path = root / f"img{i}.png"
        write_image(path, rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        paths.append(path)
    return paths


def _section(parts, **overrides):
    values = {"backend": "minigpt4", **parts, "max_new_tokens": 10, "batch_size": 4, "quantize": "none", "device": "cpu", **overrides}
    return ExperimentConfig().override("describe", **values).describe


@pytest.fixture(scope="module")
def backend(parts):
    from lmmclf.describe.backends.minigpt4 import MiniGPT4Backend

    return MiniGPT4Backend(_section(parts), PROMPT)


class Reference:
    """MiniGPT-4's inference, transcribed from Vision-CAIR/MiniGPT-4 onto the same parts.

    minigpt4.py ``encode_img``, minigpt_base.py ``get_context_emb``, conversation.py
    ``CONV_VISION_Vicuna0`` / ``Chat.ask`` / ``Chat.answer`` / ``StoppingCriteriaSub``, demo.py's
    stop ids, blip_processors.py ``Blip2ImageEvalProcessor``. The whole BLIP-2 model is loaded
    (as LAVIS loads its checkpoint); the slow LlamaTokenizer is its sentencepiece model.
    """

    def __init__(self, parts):
        import sentencepiece
        import torch
        from torchvision import transforms
        from torchvision.transforms.functional import InterpolationMode
        from transformers import Blip2ForConditionalGeneration, LlamaForCausalLM

        blip2 = Blip2ForConditionalGeneration.from_pretrained(parts["minigpt4_vision"]).eval()
        self.visual_encoder, self.Qformer, self.query_tokens = blip2.vision_model, blip2.qformer, blip2.query_tokens
        ckpt = torch.load(parts["minigpt4_projection"], map_location="cpu", weights_only=True)
        self.llama_model = LlamaForCausalLM.from_pretrained(parts["model"]).eval()
        self.llama_proj = torch.nn.Linear(blip2.config.qformer_config.hidden_size, self.llama_model.config.hidden_size)
        self.llama_proj.load_state_dict({"weight": ckpt["model"]["llama_proj.weight"], "bias": ckpt["model"]["llama_proj.bias"]})
        self.sp = sentencepiece.SentencePieceProcessor(model_file=parts["model"] + "/tokenizer.model")
        size = blip2.config.vision_config.image_size
        self.vis_processor = transforms.Compose([
            transforms.Resize((size, size), interpolation=InterpolationMode.BICUBIC), transforms.ToTensor(),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ])
        self.torch = torch

    def llama_tokenizer(self, seg, add_special_tokens):
        return self.torch.tensor([([self.sp.bos_id()] if add_special_tokens else []) + self.sp.encode(seg)])

    def encode_img(self, image):
        image_embeds = self.visual_encoder(image).last_hidden_state  # ln_vision(visual_encoder(image))
        image_atts = self.torch.ones(image_embeds.size()[:-1], dtype=self.torch.long)
        query_tokens = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        query_output = self.Qformer(query_embeds=query_tokens, encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        return self.llama_proj(query_output.last_hidden_state)

    def get_context_emb(self, prompt, img_list):
        prompt_segs = prompt.split("<ImageHere>")
        seg_tokens = [self.llama_tokenizer(seg, add_special_tokens=i == 0) for i, seg in enumerate(prompt_segs)]
        seg_embs = [self.llama_model.get_input_embeddings()(seg_t) for seg_t in seg_tokens]
        mixed_embs = [emb for pair in zip(seg_embs[:-1], img_list) for emb in pair] + [seg_embs[-1]]
        return self.torch.cat(mixed_embs, dim=1)

    def answer(self, path, text, max_new_tokens):
        from PIL import Image
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self.torch

        class StoppingCriteriaSub(StoppingCriteria):
            def __init__(self, stops):
                super().__init__()
                self.stops = stops

            def __call__(self, input_ids, scores, **kwargs):
                for stop in self.stops:
                    if input_ids.shape[1] >= len(stop) and torch.all(input_ids[:, -len(stop):] == stop).item():
                        return torch.tensor([True])
                return torch.tensor([False])

        # CONV_VISION_Vicuna0.get_prompt() after upload_img, ask(text) and append_message(Assistant, None)
        system = ("Give the following image: <Img>ImageContent</Img>. "
                  "You will be able to see the image once I provide it to you. Please answer my questions.")
        messages = [["Human: ", " ".join(["<Img><ImageHere></Img>", text])], ["Assistant: ", None]]
        prompt = system + "###"
        for role, message in messages:
            prompt += role + message + "###" if message else role
        with torch.inference_mode():
            image = self.vis_processor(Image.open(path).convert("RGB")).unsqueeze(0)
            embs = self.get_context_emb(prompt, [self.encode_img(image)])
            stops = [torch.tensor([self.sp.piece_to_id("###")]), torch.tensor([self.sp.piece_to_id("##"), self.sp.piece_to_id("#")])]
            output_token = self.llama_model.generate(
                inputs_embeds=embs, max_new_tokens=max_new_tokens, stopping_criteria=StoppingCriteriaList([StoppingCriteriaSub(stops)]),
                num_beams=1, do_sample=False, min_length=1, repetition_penalty=1.05, pad_token_id=2,
            )[0]
        output_text = self.sp.decode(output_token.tolist())
        output_text = output_text.split("###")[0].split("Assistant:")[-1].strip()
        return output_token.tolist(), output_text


def test_tokens_equal_minigpt4_reference(backend, parts, pictures, monkeypatch):
    reference = Reference(parts)
    seen = []
    original = backend._answer
    monkeypatch.setattr(backend, "_answer", lambda tokens: (seen.append(tokens), original(tokens))[1])
    answers = backend.describe_batch([Job(p.name, p) for p in pictures[:3]])
    for path, row, answer in zip(pictures, seen, answers):
        tokens, text = reference.answer(path, PROMPT, 10)
        assert row[:len(tokens)] == tokens and answer.text == text and answer.generated_tokens == len(tokens)


def test_batch_of_four_equals_one_at_a_time(backend, pictures):
    jobs = [Job(p.name, p) for p in pictures]
    batched = backend.describe_batch(jobs)
    assert batched == [backend.describe_batch([job])[0] for job in jobs]
    import torch

    embeddings = backend.image_embeddings(torch.stack([backend.preprocess(job) for job in jobs]))
    assert not torch.equal(embeddings[0], embeddings[1])  # the images reach the LLM (faintly, in a tiny random Q-Former)


def test_left_padded_rows_of_different_lengths_match_their_solo_runs(backend, pictures):
    pixels = [backend.preprocess(Job(p.name, p)) for p in pictures]
    tails = [backend.after_ids, backend.after_ids[:3], backend.after_ids + backend.after_ids[:5], backend.after_ids[1:]]
    rows = backend.context_embeddings(pixels, tails)
    assert len({r.shape[0] for r in rows}) > 1, "the test needs rows of different lengths"
    assert backend.generate_rows(rows) == [backend.generate_rows([r])[0] for r in rows]


def test_stop_at_hashes_and_answer_cut(backend):
    from lmmclf.describe.backends.minigpt4 import StopOnSequences, clean_answer

    sp = backend.sp
    assert backend.stops == [[sp.piece_to_id("###")], [sp.piece_to_id("##"), sp.piece_to_id("#")]]
    body = sp.encode("a dog")
    text, count, cut = backend._answer(body + [sp.piece_to_id("##"), sp.piece_to_id("#")] + sp.encode("red car"))
    assert (text, count, cut) == ("a dog", len(body) + 2, False)
    assert backend._answer(body)[2] is True  # no stop within the budget: truncated
    import torch

    rows = torch.tensor([body[:1] + [sp.piece_to_id("###")], body[:2]])
    assert StopOnSequences(backend.stops)(rows, None).tolist() == [True, False]  # per row, unlike MiniGPT-4's
    assert clean_answer(" Assistant: 1. a man ### Human: x") == "1. a man"


def test_only_the_vision_parts_are_read(parts):
    from pathlib import Path

    from lmmclf.describe.backends.minigpt4_parts import _read_tensors

    tensors = _read_tensors([Path(parts["minigpt4_vision"]) / "model.safetensors"])
    assert tensors and not any(k.startswith(("language_model", "language_projection")) for k in tensors)


def test_pickle_payload_projection_is_refused_without_running(tmp_path):
    import torch

    from lmmclf.describe.backends.minigpt4_parts import load_projection

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"model": {"llama_proj.weight": torch.zeros(48, 32), "llama_proj.bias": Payload()}}, path)
    with pytest.raises(LmmclfError, match="evil.pth"):
        load_projection(path, 32, 48)
    assert not marker.exists()
    with pytest.raises(LmmclfError, match="llama_proj"):
        load_projection(make_tiny_projection(tmp_path / "wrong.pth", llm_hidden=16), 32, 48)


def test_key_changes_with_each_part(parts, tmp_path, store):
    from lmmclf.datasets import load_dataset, register
    from lmmclf.describe import describe_spec
    from lmmclf.testing.layouts import make_imagefolder

    register("pets", make_imagefolder(tmp_path / "pets", n_train=2, n_test=1), "imagefolder")
    other = {"model": make_tiny_vicuna(tmp_path / "v2", seed=1), "minigpt4_vision": make_tiny_blip2(tmp_path / "b2", seed=1),
             "minigpt4_projection": make_tiny_projection(tmp_path / "p2.pth", seed=1)}

    def key(**change):
        cfg = ExperimentConfig().override("dataset", name="pets").override("describe", backend="minigpt4", **{**parts, **change})
        return describe_spec(cfg, load_dataset(cfg, store, show_progress=False), store).key

    base = key()
    keys = {base} | {key(**{name: str(path)}) for name, path in other.items()}
    assert len(keys) == 4
    assert key(device="cpu", batch_size=2) == base  # runtime options stay out
    with pytest.raises(LmmclfError, match="minigpt4_projection"):
        key(minigpt4_projection=None)


def test_describe_command_runs_through_the_backend(runner, parts, tmp_path):
    """The real command line on the tiny parts: every image is generated for, and a random LLM's text (no list, cut by
    the budget) is kept as what the model said, its shape recorded."""
    from lmmclf.datasets import register
    from lmmclf.testing.layouts import make_imagefolder

    register("pets", make_imagefolder(tmp_path / "pets", n_train=2, n_test=1), "imagefolder")
    args = ["describe", "pets", "--backend", "minigpt4", "--model", parts["model"], "--minigpt4-vision", parts["minigpt4_vision"],
            "--minigpt4-projection", parts["minigpt4_projection"], "--device", "cpu", "--quantize", "none",
            "--max-new-tokens", "6", "--batch-size", "4", "--json"]
    result = runner.invoke(app, args)
    summary = json.loads(result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1])
    assert summary["total"] == 9 and summary["tokens"] == 9 * 6
    assert result.exit_code == 0, result.output
    assert sum(summary["shapes"].values()) + summary["failures_total"] == 9 and summary["usable"] > 0
    assert summary["shapes"]["list"] < sum(summary["shapes"].values())  # token soup is no list, yet it counts


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_the_llm_loads_in_torchao_int8(parts, pictures):
    """MiniGPT-4's Vicuna takes the same quantization modes as the hf backend (describe/backends/quantization.py)."""
    from lmmclf.describe.backends.minigpt4 import MiniGPT4Backend

    quantized = MiniGPT4Backend(_section(parts, quantize="int8-torchao"), PROMPT)
    weight = quantized.model.model.layers[0].self_attn.q_proj.weight
    assert type(weight).__module__.startswith("torchao") and quantized.resolved()["quantize"] == "int8-torchao"
    answers = quantized.describe_batch([Job(p.name, p) for p in pictures[:2]])
    assert all(answer.text for answer in answers)
