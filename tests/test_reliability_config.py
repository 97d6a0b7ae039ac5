"""Issue 8, item 14: config, registry and output-folder values that used to pass validation and
fail later (NaN, negative rates, a hung generation budget, a YAML alias bomb, bad bytes,
`root: 123`, an unwritable eval.out_dir). Each must be one sentence naming the key or file, at
load time, through the real command line, and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from lmmclf.cli.app import app


def _fails_cleanly(result, *needles: str) -> str:
    """The command exited 1 with one ``Error:`` sentence holding ``needles``, and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "Error:" in text, text
    text = text[text.index("Error:"):]  # after any progress bar
    for needle in needles:
        assert needle in text, text
    return text


def _config(tmp_path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# -- values -------------------------------------------------------------------------------------
BAD_VALUES = [
    ("probe:\n  lr: .nan\n", "probe.lr must be a finite number"),
    ("probe:\n  lr: nan\n", "probe.lr must be a finite number"),
    ("finetune:\n  lr: 1e999\n", "finetune.lr must be a finite number"),
    ("finetune:\n  alpha: .inf\n", "finetune.alpha must be a finite number"),
    ("describe:\n  timeout: .inf\n", "describe.timeout must be a finite number"),
    ("describe:\n  timeout: 1.0e+9\n", "describe.timeout must be greater than 0 and at most 86400"),
    ("embed:\n  max_missing_descriptions: .nan\n", "embed.max_missing_descriptions must be a finite number"),
    ("eval:\n  confidence: -.inf\n", "eval.confidence must be a finite number"),
    ("probe:\n  weight_decay: -0.1\n", "probe.weight_decay must be at least 0"),
    ("finetune:\n  weight_decay: -1\n", "finetune.weight_decay must be at least 0"),
    ("probe:\n  momentum: -0.5\n", "probe.momentum must be at least 0 and below 1"),
    ("finetune:\n  momentum: 1.5\n", "finetune.momentum must be at least 0 and below 1"),
    ("describe:\n  temperature: 0\n", "describe.temperature must be positive"),
    ("describe:\n  temperature: -1.0\n", "describe.temperature must be positive"),
    ("describe:\n  repetition_penalty: 0\n", "describe.repetition_penalty must be positive"),
    ("describe:\n  top_p: 0\n", "describe.top_p must be greater than 0 and at most 1"),
    ("describe:\n  top_p: 1.5\n", "describe.top_p must be greater than 0 and at most 1"),
    ("describe:\n  image_max_side: -5\n", "describe.image_max_side must be at least 0"),
    ("describe:\n  max_new_tokens: 100000000000000000000\n", "describe.max_new_tokens must be at least 1 and at most 32768"),
    ("describe:\n  max_new_tokens: 40000\n", "describe.max_new_tokens must be at least 1 and at most 32768"),
    ("describe:\n  max_new_tokens: 1e20\n", "describe.max_new_tokens must be an integer; got '1e20'"),  # YAML: a string
    ("describe:\n  max_new_tokens: 1.0e+20\n", "describe.max_new_tokens must be an integer"),  # YAML: a float
    ("describe:\n  retry_backoff: -1\n", "describe.retry_backoff must be between 0 and 60"),
    ("describe:\n  concurrency: 1000000\n", "describe.concurrency must be at least 1 and at most 1024"),
    ("describe:\n  max_retries: 100000\n", "describe.max_retries must be at least 0 and at most 100"),
    ("describe:\n  seed: -1\n", "describe.seed must be at least 0"),
    ("describe:\n  limit: 0\n", "describe.limit must be at least 1"),
    ("describe:\n  num_descriptions: 1000000\n", "describe.num_descriptions must be at least 1 and at most 1000"),
    ("dataset:\n  decode_workers: -1\n", "dataset.decode_workers must be at least 0"),
    ("embed:\n  num_workers: 100000\n", "embed.num_workers must be at least 0 and at most 1024"),
    ("probe:\n  seeds: [0, -1]\n", "probe.seeds[1] must be at least 0 and at most 4294967295"),
    ("finetune:\n  seeds: [1099511627776]\n", "finetune.seeds[0] must be at least 0 and at most 4294967295"),
    ("probe:\n  epochs: 1000000000000\n", "probe.epochs must be at least 1 and at most 1000000"),
    ("finetune:\n  unlocked_blocks: -1\n", "finetune.unlocked_blocks must be at least 0 and at most 1000"),
    ("eval:\n  bootstrap: 1000000000000\n", "eval.bootstrap must be at least 0 and at most 1000000"),
]


@pytest.mark.parametrize("text, message", BAD_VALUES, ids=[m.split(" must")[0] + f"-{i}" for i, (_, m) in enumerate(BAD_VALUES)])
def test_a_bad_value_is_one_sentence_naming_the_key(tmp_path, runner, text, message):
    result = runner.invoke(app, ["-c", str(_config(tmp_path, text)), "config", "show"])
    _fails_cleanly(result, message, str(tmp_path / "exp.yaml"))


def test_a_huge_value_is_shown_short(tmp_path, runner):
    result = runner.invoke(app, ["-c", str(_config(tmp_path, "probe:\n  lr: " + "9" * 3000 + ".0\n")), "config", "show"])
    assert len(_fails_cleanly(result, "probe.lr must be a finite number")) < 300


@pytest.mark.parametrize(
    "args, message",
    [
        (["probe", "toy", "--lr", "nan"], "probe.lr must be a finite number"),
        (["probe", "toy", "--momentum", "-0.5"], "probe.momentum must be at least 0"),
        (["probe", "toy", "--weight-decay", "-1"], "probe.weight_decay must be at least 0"),
        (["finetune", "toy", "--alpha", "inf"], "finetune.alpha must be a finite number"),
        (["finetune", "toy", "--lr", "-inf"], "finetune.lr must be a finite number"),
        (["describe", "toy", "--temperature", "-1"], "describe.temperature must be positive"),
        (["describe", "toy", "--top-p", "2"], "describe.top_p must be greater than 0 and at most 1"),
        (["describe", "toy", "--max-new-tokens", "100000000000000000000"], "describe.max_new_tokens must be at least 1"),
        (["describe", "toy", "--repetition-penalty", "nan"], "describe.repetition_penalty must be a finite number"),
        (["eval", "toy", "--bootstrap", "-5"], "eval.bootstrap must be at least 0"),
    ],
)
def test_flags_go_through_the_same_checks(runner, args, message):
    """No dataset named `toy` exists: the value is refused first, before any work, as a usage error naming the flag."""
    result = runner.invoke(app, args)
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"Invalid value for {args[2]}: {message.split(' ', 1)[1]}" in text, text


# -- files: hostile YAML, bytes, shapes ------------------------------------------------------------
def _alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": 9 levels of 9 aliases each, 9**9 strings once expanded."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\neval:\n  methods: *l{levels - 1}\n"


def _limit_memory() -> None:  # in the child: a bomb that expands dies fast instead of swapping
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_an_alias_bomb_is_refused_quickly_and_in_little_memory(tmp_path):
    """In a child process with a deadline and 2 GiB of address space. Before the fix, the registry
    bomb (accepted: its entry is a mapping) was expanded by `datasets list --json` until MemoryError."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    registry = tmp_path / "user-config" / "datasets.yaml"
    registry.parent.mkdir(parents=True, exist_ok=True)
    nested = _alias_bomb().replace("eval:\n  methods:", "all:")  # the anchors inside the entry: a mapping
    registry.write_text("pets:\n  type: imagefolder\n  root: /data\n  notes:\n" + textwrap.indent(nested, "    "))
    script = textwrap.dedent(f"""
        import time, tracemalloc
        from typer.testing import CliRunner
        from lmmclf.cli.app import app
        from lmmclf.config import load_config
        from lmmclf.errors import ConfigError
        tracemalloc.start()
        started = time.perf_counter()
        try:
            load_config({str(bomb)!r})
        except ConfigError:
            pass
        print("seconds", time.perf_counter() - started)
        print("peak_mb", tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
        for args in (["-c", {str(bomb)!r}, "config", "show"], ["datasets", "list", "--json"]):
            result = CliRunner().invoke(app, args)
            print("exit", result.exit_code, " ".join(result.output.split()))
    """)
    env = {**os.environ, "LMMCLF_CONFIG_DIR": str(registry.parent)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env,
                          preexec_fn=_limit_memory if sys.platform == "linux" else None)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - started < 30
    report = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert float(report["seconds"]) < 2 and float(report["peak_mb"]) < 50, report
    outputs = [line for line in done.stdout.splitlines() if line.startswith("exit")]
    assert outputs[0].startswith(f"exit 1 Error: Config file {bomb} expands to more than"), outputs
    assert outputs[1].startswith(f"exit 1 Error: Dataset registry {registry} expands to more than"), outputs


HOSTILE_FILES = [
    (b"probe:\n  lr: 0.1 # caf\xe9 in Latin-1\n", "is not UTF-8 text"),
    (b"\xff\xfe\x00p\x00r\x00o\x00b\x00e", "is not UTF-8 text"),
    (b"eval:\n  methods: &x [image, *x]\n", "contains itself"),
    (b"probe: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nests deeper than 64 levels"),
    (b"probe:\n  seeds: [" + b"9" * 5000 + b"]\n", "holds a value YAML cannot read"),
    (b"probe:\n  lr: 2021-13-45\n", "holds a value YAML cannot read (month must be in 1..12)"),
    (b"probe:\n  lr: 0.1\n  \x00: 1\n", "is not valid YAML"),
    (b"- probe\n- eval\n", "the top level must be a mapping of sections"),
    (b"just text\n", "the top level must be a mapping of sections"),
    (b"probe: 5\n", "section 'probe' must be a mapping"),
    (b"x" * (2 << 20), "is larger than 1 MiB"),
]


@pytest.mark.parametrize("content, message", HOSTILE_FILES, ids=[m for _, m in HOSTILE_FILES])
def test_a_hostile_config_file_is_one_sentence_naming_it(tmp_path, runner, content, message):
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    _fails_cleanly(runner.invoke(app, ["-c", str(path), "config", "show"]), str(path), message)


def test_yaml_anchors_within_bounds_still_work(tmp_path, runner):
    path = _config(tmp_path, "probe:\n  seeds: &s [1, 2]\nfinetune:\n  seeds: *s\n")
    result = runner.invoke(app, ["-c", str(path), "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["finetune"]["seeds"] == [1, 2]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"pets: {type: imagefolder, root: 123}\n", "'pets.root' must be a folder path written as text; got 123"),
        (b"pets: {type: imagefolder, root: [a, b]}\n", "'pets.root' must be a folder path"),
        (b"pets: {type: 5, root: /data}\n", "'pets.type' must be a dataset type written as text"),
        (b"pets: {type: imagefolder, root: ''}\n", "'pets.root' must be a folder path"),
        (b"pets: /data/pets\n", "'pets' must map to {type, root}"),
        (b"- pets\n", "must map each name to {type, root}"),
        (b"pets: {type: imagefolder, root: /data/caf\xe9}\n", "is not UTF-8 text"),
        (b"pets: {type: imagefolder, root: &r /data\n", "is not valid YAML"),
    ],
)
def test_a_bad_registry_is_one_sentence_naming_it(tmp_path, runner, isolated_user_dirs, content, message):
    registry = isolated_user_dirs["config"] / "datasets.yaml"
    registry.parent.mkdir(parents=True)
    registry.write_bytes(content)
    for args in (["datasets", "info", "pets"], ["datasets", "list"]):
        _fails_cleanly(runner.invoke(app, args), f"Dataset registry {registry}", message)


def test_a_config_dir_below_a_file_is_one_sentence(tmp_path, runner, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("LMMCLF_CONFIG_DIR", str(blocker / "lmmclf"))
    (tmp_path / "pets").mkdir()
    result = runner.invoke(app, ["datasets", "add", "pets", "--root", str(tmp_path / "pets"), "--type", "imagefolder"])
    _fails_cleanly(result, f"Cannot write the dataset registry {blocker / 'lmmclf' / 'datasets.yaml'}", "$LMMCLF_CONFIG_DIR")


# -- eval.out_dir ---------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "below-file", "flag-below-file"])
def test_an_out_dir_that_is_a_file_is_refused_before_any_work(tmp_path, runner, where):
    """The dataset `nowhere` is not registered: the folder is refused before the dataset is read."""
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    target = blocker if where == "file" else blocker / "sub"
    config = _config(tmp_path, f"dataset:\n  name: nowhere\neval:\n  out_dir: {target if where != 'flag-below-file' else tmp_path}\n")
    args = ["-c", str(config), "eval"] + (["--out-dir", str(target)] if where == "flag-below-file" else [])
    _fails_cleanly(runner.invoke(app, args), f"eval.out_dir {target} is not writable ({blocker} is a file, not a folder)")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_dir_is_refused_before_any_work(tmp_path, runner):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        config = _config(tmp_path, f"dataset:\n  name: nowhere\neval:\n  out_dir: {locked / 'results'}\n")
        _fails_cleanly(runner.invoke(app, ["-c", str(config), "eval"]), f"eval.out_dir {locked / 'results'} is not writable")
    finally:
        locked.chmod(0o700)


def test_an_out_dir_failing_at_write_time_is_the_same_sentence(tmp_path, runner, monkeypatch):
    """The folder passes the early check, but results.json cannot be written (a folder of that name).

    The results document is stubbed: what is tested is the write, not the statistics."""
    from lmmclf.evaluation import report
    from lmmclf.testing.layouts import make_imagefolder

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b"), n_train=1, n_test=1)
    monkeypatch.setattr(report, "evaluate", lambda *args, **kwargs: ({"dataset": "pets", "methods": [], "missing": []}, []))
    out = tmp_path / "out"
    (out / "results.json").mkdir(parents=True)
    config = _config(tmp_path, f"dataset:\n  name: pets\n  type: imagefolder\n  root: {root}\n")
    result = runner.invoke(app, ["-c", str(config), "eval", "--no-plot", "--out-dir", str(out)])
    _fails_cleanly(result, f"eval.out_dir {out} is not writable (Is a directory)")
