"""Weight quantization of local describe models: torchao's compile-friendly schemes and their refusals."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from types import SimpleNamespace

import h5py
import pytest

from lmmclf.cli.app import app
from lmmclf.datasets import register
from lmmclf.describe.backends import quantization
from lmmclf.errors import LmmclfError
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.teach import teach_numbered_lists
from lmmclf.testing.tiny_lmm import make_tiny_llava

needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")


@pytest.fixture(scope="module")
def taught_llava(tmp_path_factory):
    return teach_numbered_lists(make_tiny_llava(tmp_path_factory.mktemp("llava") / "model"))


@pytest.fixture
def pets(tmp_path, isolated_user_dirs):
    register("pets", make_imagefolder(tmp_path / "pets", n_train=3, n_test=1), "imagefolder")


def _flags(model, quantize):
    return ["describe", "pets", "--model", str(model), "--quantize", quantize, "--device", "cpu", "--max-new-tokens", "40",
            "--split", "train", "--json"]


@needs_torchao
def test_int8_torchao_describes_through_the_command_line_and_enters_the_key(runner, pets, taught_llava):
    """The tiny LLaVA loads with int8 weight-only tensors and writes descriptions; the mode is in the key."""
    int8 = runner.invoke(app, _flags(taught_llava, "int8-torchao"))
    assert int8.exit_code == 0, int8.output
    summary = json.loads(int8.stdout)
    assert summary["described"] == 9 and summary["failed"] == 0  # 3 classes x 3 training images
    with h5py.File(summary["artifact"], "r") as handle:
        assert handle.attrs["resolved_quantize"] == "int8-torchao"
        assert min(handle["num_descriptions"][...]) >= 1
    plain = json.loads(runner.invoke(app, _flags(taught_llava, "none")).stdout)
    assert plain["key"] != summary["key"] and plain["described"] == 9  # another mode is another artifact, not a cache hit
    with h5py.File(summary["artifact"], "r") as int8_file, h5py.File(plain["artifact"], "r") as fp32_file:
        # a taught model's logits are far from ties: int8 weights must not change what it says
        assert list(int8_file["raw"][...]) == list(fp32_file["raw"][...])
        assert len(set(fp32_file["raw"][...])) > 1  # and it says different things for different images


@needs_torchao
def test_int8_torchao_weights_are_torchao_tensors(taught_llava):
    from lmmclf.config import ExperimentConfig
    from lmmclf.describe.backends.hf import HFBackend

    section = ExperimentConfig().override("describe", model=str(taught_llava), quantize="int8-torchao", device="cpu",
                                          max_new_tokens=8, batch_size=2).describe
    backend = HFBackend(section, "Describe the image")
    weight = backend.model.model.language_model.layers[0].self_attn.q_proj.weight
    assert type(weight).__module__.startswith("torchao") and backend.resolved()["quantize"] == "int8-torchao"


def test_unsupported_modes_are_refused_in_one_sentence_before_loading(runner, pets, taught_llava):
    result = runner.invoke(app, _flags(taught_llava, "int4-torchao"))
    assert result.exit_code == 1
    assert "--quantize int4-torchao needs a CUDA GPU" in result.stderr and "--quantize int8-torchao or none" in result.stderr
    result = runner.invoke(app, _flags(taught_llava, "8bit"))
    assert result.exit_code == 1 and "--quantize 8bit needs a CUDA GPU (bitsandbytes)" in result.stderr
    result = runner.invoke(app, _flags(taught_llava, "int8-torchao") + ["--compile"])
    assert result.exit_code == 1 and "describe.compile needs a CUDA device" in result.stderr
    assert "Loading weights" not in result.stderr  # refused before minutes of loading


def test_missing_torchao_is_one_sentence_with_the_install_command(runner, pets, taught_llava, monkeypatch, isolated_user_dirs):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    result = runner.invoke(app, _flags(taught_llava, "int8-torchao"))
    assert result.exit_code == 1
    assert "--quantize int8-torchao needs torchao, which is not installed: `pip install 'lmmclf[torchao]'`" in result.stderr
    assert [line for line in result.stderr.splitlines() if "torchao" in line] == [result.stderr.strip().splitlines()[-1]]
    describe_dir = isolated_user_dirs["cache"] / "describe"
    assert not [*describe_dir.glob("*.h5"), *describe_dir.glob("*.jsonl")]  # refused before any describe work
    assert quantization.choose_quantization(13_350_000_000, 24 << 30) == "8bit"  # auto falls back to bitsandbytes


def test_auto_is_none_on_the_cpu_and_respects_a_prequantized_checkpoint():
    plain = SimpleNamespace()
    assert quantization.pick_quantization("auto", "cpu", plain, "m", lambda: 1 / 0) == "none"  # never counts on the CPU
    saved = SimpleNamespace(quantization_config={"quant_method": "awq", "bits": 4})
    assert quantization.pick_quantization("auto", "cuda", saved, "m", lambda: 1 / 0) == quantization.PREQUANTIZED
    assert quantization.transformers_config(quantization.PREQUANTIZED, None) is None  # loaded as saved
    with pytest.raises(LmmclfError, match=r"describe.model 'm' is already quantized \(awq\); pass --quantize auto"):
        quantization.pick_quantization("int8-torchao", "cuda", saved, "m", lambda: 1)


def test_int4_torchao_computes_in_bfloat16():
    import torch

    assert quantization.compute_dtype("int4-torchao", "auto", torch.float16) == torch.bfloat16
    assert quantization.compute_dtype("int8-torchao", "auto", torch.float16) == torch.float16
    with pytest.raises(LmmclfError, match="pass --dtype bfloat16 or auto, not float16"):
        quantization.compute_dtype("int4-torchao", "float16", torch.float16)


def test_compile_is_refused_only_for_bitsandbytes():
    for mode in ("none", "int8-torchao", "int4-torchao", quantization.PREQUANTIZED):
        quantization.check_compile(mode)
    with pytest.raises(LmmclfError, match="pass --quantize int8-torchao"):
        quantization.check_compile("8bit")
    with pytest.raises(LmmclfError, match="pass --quantize int4-torchao"):
        quantization.check_compile("4bit")


def test_auto_batch_size_grows_with_the_memory_quantized_weights_leave():
    """The batch is sized from free memory after loading: 13B in int8 on 24 GB leaves room for a batch, fp16 none."""
    from transformers import LlamaConfig

    from lmmclf.describe.backends.hf import auto_batch_size
    from lmmclf.testing.tiny_lmm import LLAVA_15_13B_CONFIG

    text = LlamaConfig(**{k: v for k, v in LLAVA_15_13B_CONFIG["text_config"].items() if k != "model_type"})
    parameters, card = 13_350_000_000, 24 << 30
    sizes = {mode: auto_batch_size(text, 576, 300, card - parameters * quantization.BYTES_PER_PARAMETER[mode] * 1.15, 2)
             for mode in ("int8-torchao", "int4-torchao")}
    assert 4 <= sizes["int8-torchao"] < sizes["int4-torchao"]


def test_cross_attention_cache_counts_in_the_batch_size():
    """Mllama caches every tile's vision states in each cross-attention layer: far more than its 1 image token."""
    from transformers import MllamaConfig

    from lmmclf.describe.backends.hf import auto_batch_size, cross_attention_tokens

    config = MllamaConfig()  # Llama-3.2-11B-Vision's defaults: 4 tiles of 448 px, 8 cross-attention layers
    assert cross_attention_tokens(config) == 4 * ((448 // 14) ** 2 + 1)
    text = config.get_text_config()
    naive = auto_batch_size(text, 20, 300, 3 << 30, 2)
    counted = auto_batch_size(text, 20, 300, 3 << 30, 2, cross_attention_tokens(config))
    assert counted * 2 < naive
    from transformers import LlavaConfig

    assert cross_attention_tokens(LlavaConfig()) == 0  # self-attention models read the image in their sequence


@needs_torchao
def test_torchao_import_notes_are_not_printed():
    """torch logs a deprecation note per torchao enum on import; ``import lmmclf`` drops exactly those."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import lmmclf, torchao; from transformers import AutoConfig"],
                         capture_output=True, text=True, check=True)
    assert "Enum subclass" not in out.stderr

    logger = logging.getLogger("torch.utils._pytree")
    note = logger.makeRecord(logger.name, logging.WARNING, __file__, 1,
                             "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile as an "
                             "opaque value type.", (), None)
    other = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "something else", (), None)
    assert not logger.filter(note) and logger.filter(other)


@needs_torchao
def test_a_torchao_that_cannot_be_imported_is_one_sentence(monkeypatch):
    """A torchao built for another torch release fails on import: say so, with what to do."""
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)  # makes `from torchao.quantization import ...` raise ImportError
    with pytest.raises(LmmclfError, match="torchao is installed but cannot be imported .*; install the torchao release made for your torch"):
        quantization.transformers_config("int8-torchao", None)


def test_int4_torchao_needs_a_gpu_with_the_tinygemm_kernel(monkeypatch):
    """tinygemm needs compute capability 8.0 (an RTX 3090 is 8.6); a T4 (7.5) is refused, and auto takes bitsandbytes' 4-bit there."""
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.raises(LmmclfError, match="compute capability 8.0 or newer .*; pass --quantize int8-torchao or 4bit"):
        quantization.pick_quantization("int4-torchao", "cuda", SimpleNamespace(), "m", lambda: 1)
    assert quantization.choose_quantization(13_350_000_000, 12 << 30, torchao=True, int4_kernel=False) == "4bit"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    assert quantization.pick_quantization("int4-torchao", "cuda", SimpleNamespace(), "m", lambda: 1) == "int4-torchao"
