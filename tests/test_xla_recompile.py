"""Every weighting method's XLA-compiled step compiles once, not once per step.

XLA treats a tensor index of a strided slice (`x[j]`, `j` computed in the
step) as a compile-time constant, so such a step is recompiled whenever the
value changes: MGDA measured 1-3 s a step instead of 5 ms. Nothing fails, it
is only slow, so the test reads TensorFlow's compile log: equal-shaped
batches must reuse the first compilation.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

JOB = Path(__file__).with_name("xla_compile_job.py")
COMPILED = re.compile(r"Compiled (__inference_one_step_on_data_\d+) (\d+) times")


def compiles_per_config(log: str) -> dict:
    counts, config = {}, None
    for line in log.splitlines():
        if line.startswith("CONFIG "):
            config = line[len("CONFIG ") :]
            counts[config] = 0
        match = COMPILED.search(line)
        if match and config is not None:
            counts[config] = max(counts[config], int(match.group(2)))
    return counts


def test_compile_log_parser_counts_the_most_compilations_per_config():
    log = (
        "CONFIG pcgrad parameters 2\n"
        "I0 device_compilation_profiler.cc:113] Compiled __inference_one_step_on_data_12 1 times, x\n"
        "I0 device_compilation_profiler.cc:113] Compiled __inference_one_step_on_data_12 2 times, x\n"
        "CONFIG fixed None 3\n"
        "I0 device_compilation_profiler.cc:113] Compiled __inference_one_step_on_data_40 1 times, x\n"
    )
    assert compiles_per_config(log) == {"pcgrad parameters 2": 2, "fixed None 3": 1}


@pytest.mark.slow
def test_no_weighting_method_recompiles_its_xla_step_per_batch():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", TF_CPP_VMODULE="device_compilation_profiler=2")
    out = subprocess.run(
        [sys.executable, str(JOB)], env=env, capture_output=True, text=True, timeout=900
    )
    assert "DONE" in out.stderr, out.stderr[-3000:]
    counts = compiles_per_config(out.stderr)
    assert len(counts) >= 20, counts
    # 8 equal batches over 2 epochs: one compilation each.
    recompiled = {config: n for config, n in counts.items() if n != 1}
    assert not recompiled, f"steps compiled more than once (config: compilations): {recompiled}"
