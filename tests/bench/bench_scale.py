"""Benchmark (issue 23, item 5): the whole pipeline at growing N, with time and peak RSS per stage.

For each N: N tiny synthetic images (8 x 8 PNGs, 10 classes, 70 % train) in an image folder; describe
through a loopback OpenAI-compatible server (lmmclf.testing.openai_server; 32 requests in flight);
embed with a tiny random CLIP; then prototypes, probe (concat) and eval. Each stage runs as its own
``lmmclf`` process, so its peak RSS (``ru_maxrss``) is its own. Then one image is added and describe is
run again: it sends one request (per-image entries), and a describe of the train split sends none.

Usage: python tests/bench/bench_scale.py [--sizes 10000 100000 1000000] [--epochs 3]
The 1 M run takes about an hour on 2 CPU cores; it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CLASSES = 10
# runs the command line in this process and reports its own peak RSS (kB on Linux) at exit
_MEASURED = ("import atexit, resource, sys\n"
             "atexit.register(lambda: print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
             "from lmmclf.cli.app import main\n"
             "sys.argv = ['lmmclf', *sys.argv[1:]]\n"
             "main()\n")


def _images(root: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % CLASSES
        split = "train" if (i // CLASSES) % 10 < 7 else "test"
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.integers(0, 60, (8, 8, 3)) + label * 19).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:07d}.png")


def _run(args: list[str], env: dict) -> tuple[float, float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"lmmclf {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    peak = next((int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB")), 0)
    return seconds, peak / 1024, result.stdout


def main() -> None:
    import os

    from lmmclf.testing.openai_server import FakeOpenAIServer
    from lmmclf.testing.tiny_clip import make_tiny_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    table: dict[int, dict[str, tuple[float, float]]] = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            _images(tmp / "data", n)
            clip = make_tiny_clip(tmp / "clip")
            with FakeOpenAIServer(lifetime=24 * 3600, max_requests=10 * n + 100) as server:
                config = {
                    "dataset": {"name": f"scale{n}", "type": "imagefolder", "root": str(tmp / "data")},
                    "describe": {"backend": "openai", "model": "m", "base_url": server.url, "concurrency": 32,
                                 "num_descriptions": 10},
                    "embed": {"clip_model": clip, "clip_pretrained": None, "device": "cpu", "batch_size": 256, "num_workers": 0},
                    "probe": {"epochs": args.epochs, "seeds": [0], "device": "cpu", "batch_size": 256},
                    "eval": {"out_dir": str(tmp / "results")},
                }
                (tmp / "exp.yaml").write_text(yaml.safe_dump(config))
                env = {**os.environ, "LMMCLF_NO_PROGRESS": "1", "LMMCLF_CACHE": str(tmp / "cache")}
                base = ["-c", str(tmp / "exp.yaml")]
                stages = {
                    "describe": ["describe", "--json"], "embed": ["embed"], "prototypes": ["prototypes"],
                    "probe": ["probe", "--features", "concat"], "eval": ["eval", "--method", "concat", "--json"],
                }
                table[n] = {}
                for name, words in stages.items():
                    seconds, peak, _ = _run([*base, *words], env)
                    table[n][name] = (seconds, peak)
                    print(f"N={n:>8} {name:<11} {seconds:8.1f} s  peak {peak:7.0f} MB", flush=True)
                asked = len(server.requests)
                from PIL import Image

                Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp / "data" / "train" / "class0" / "added.png")
                _run([*base, "describe", "--json"], env)
                _run([*base, "describe", "--split", "train", "--json"], env)
                print(f"N={n:>8} one image added: {len(server.requests) - asked} request(s); the train split then: "
                      f"{len(server.requests) - asked - 1} more", flush=True)
    if len(table) > 1:
        small, large = min(table), max(table)
        print(f"\nfrom N={small} to N={large} ({large / small:.0f}x): time ratio, peak RSS ratio per stage")
        for name in table[small]:
            (t0, m0), (t1, m1) = table[small][name], table[large][name]
            print(f"  {name:<11} time {t1 / t0:5.1f}x   peak RSS {m1 / m0:5.2f}x   ({m0:.0f} -> {m1:.0f} MB)")
    print(json.dumps({str(n): {k: {"seconds": round(v[0], 1), "peak_mb": round(v[1])} for k, v in row.items()}
                      for n, row in table.items()}))


if __name__ == "__main__":
    main()
