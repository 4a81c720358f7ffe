"""The GPU code paths, run where CI runs: on the CPU."""
import json
import os
import subprocess
import sys

from conftest import REPO


def test_gpu_benchmark_runs_its_code_paths_on_the_cpu(tmp_path):
    """benchmarks/gpu.py --small: the training and sampling measurements the GPU run makes,
    on a tiny model, writing the JSON the results page takes its figures from."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--small", "--no-compile",
                        "--json", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["small"] and rep["train"]["eager"]["samples_per_s"] > 0
    assert [(s["batch"], s["guidance"]) for s in rep["sampling"]] == [(2, 1.0), (2, 3.0), (4, 1.0), (4, 3.0)]
    assert all(s["images_per_s"] > 0 for s in rep["sampling"])
