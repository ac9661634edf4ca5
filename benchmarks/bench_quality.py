"""Census-income test AUCs per weighting method, for shared_bottom and mmoe, over several seeds.

    .venv/bin/python benchmarks/bench_quality.py [--seeds 0 1 2] [--epochs 5]

Same setup as shared/ANCHORS.md (batch 1024, Adam 1e-3, 5 epochs, last
epoch's model, test file). Prints a Markdown table: mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_mtl as mtl  # noqa: E402

METHODS = [
    ("fixed", {}),
    ("uncertainty", {}),
    ("dwa", {}),
    ("pcgrad", {"mode": "representation"}),
    ("mgda", {"mode": "representation"}),
    ("cagrad", {"mode": "representation"}),
    ("nash_mtl", {"mode": "representation"}),
]


def build(name, data):
    trunk = mtl.trunks.tabular(data.feature_space, [128, 64] if name == "shared_bottom" else [128])
    if name == "mmoe":
        return mtl.models.mmoe(data.inputs, data.tasks, trunk, num_experts=8, expert_units=[64])
    return mtl.models.shared_bottom(data.inputs, data.tasks, trunk)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--architectures", nargs="+", default=["shared_bottom", "mmoe"])
    args = parser.parse_args()
    data = mtl.data.census_income()
    print("| architecture | method | income AUC | never-married AUC |\n|---|---|---|---|")
    for arch in args.architectures:
        for method, kwargs in METHODS:
            if arch == "mmoe" and kwargs.get("mode") == "representation":
                kwargs = {}  # MMoE's gates bypass its representation: use parameter gradients
            scores = {"income": [], "never_married": []}
            for seed in args.seeds:
                keras.utils.set_random_seed(seed)
                model = build(arch, data)
                model.compile(
                    optimizer=keras.optimizers.Adam(1e-3),
                    weighting=mtl.weighting.get(method, **kwargs),
                    metrics={t.name: [keras.metrics.AUC(name="auc")] for t in data.tasks},
                )
                model.fit(data.train, epochs=args.epochs, verbose=0, shuffle=False)
                result = model.evaluate(data.test, verbose=0, return_dict=True)
                for task in scores:
                    scores[task].append(result[f"{task}_auc"])
            cells = [
                f"{statistics.mean(v):.4f} ± {statistics.pstdev(v):.4f}" for v in scores.values()
            ]
            label = method + (f" ({kwargs['mode']})" if kwargs.get("mode") else "")
            print(f"| {arch} | {label} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
