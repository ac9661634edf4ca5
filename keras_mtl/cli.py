"""`keras-mtl`: train, export and verify multi-task models from the command line.

    keras-mtl train CONFIG.yaml [--set key=value ...]
    keras-mtl export MODEL.keras BASE_DIR [--version N] [--overwrite]
    keras-mtl verify EXPORT_DIR [--model MODEL.keras] [--dataset census_income]
    keras-mtl serving-config NAME BASE_DIR [--label stable=1 ...] [--max-batch-size N ...]
    keras-mtl report LOGDIR [-o report.html]
    keras-mtl tensorboard LOGDIR [--port 6006]
"""

from __future__ import annotations

import argparse
import json
import sys


def _train(args) -> int:
    from keras_mtl import config as config_lib
    from keras_mtl import training

    overrides = list(args.set or [])
    if args.strategy:
        overrides.append(f"train.strategy={args.strategy}")
    cfg = config_lib.load(args.config, overrides)
    result = training.run(cfg)
    print("\nTest metrics (best checkpoint):")
    print(training.metric_table(result.test_metrics, result.task_names))
    if result.export_path:
        print(f"\nExport: {result.export_path} (verified, max |diff| {result.verification['max_abs_diff']:.2e})")
    else:
        print("\nNot the chief worker: the chief writes the logs, checkpoints and export.")
    print(f"TensorBoard: tensorboard --logdir {result.log_dir} --host 127.0.0.1")
    print(f"Done in {result.seconds:.0f} s.")
    return 0


def _export(args) -> int:
    from keras_mtl import export, saving

    model = saving.load_model(args.model)
    print(export.export_saved_model(model, args.base_dir, args.version, overwrite=args.overwrite))
    return 0


def _verify(args) -> int:
    from keras_mtl import data as data_lib
    from keras_mtl import export, saving

    meta = export.read_metadata(args.path)
    dataset = data_lib.DATASETS[args.dataset](limit=max(args.samples, 16), batch_size=args.samples)
    samples = {k: v for k, v in dataset.sample(args.samples, "test").items() if k in meta["inputs"]}
    model = saving.load_model(args.model) if args.model else None
    print(json.dumps(export.verify(args.path, samples, model), indent=2))
    return 0


def _label(text: str) -> tuple[str, int]:
    label, sep, version = text.partition("=")
    if not sep or not version.strip().lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected LABEL=VERSION (e.g. stable=1), got {text!r}")
    return label.strip(), int(version)


def _serving_config(args) -> int:
    import os

    from keras_mtl import export

    entry = export.model_entry(
        args.name,
        args.base_dir,
        latest=args.latest,
        versions=args.versions,
        all_versions=args.all_versions,
        labels=dict(args.label or []),
        server_base_path=args.server_base_path,
    )
    # models.config usually lists every model under one folder (saved_models/),
    # so by default it goes beside the model's base directory.
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.base_dir)), "models.config")
    batching = {
        k: v
        for k, v in {
            "max_batch_size": args.max_batch_size,
            "batch_timeout_micros": args.batch_timeout_micros,
            "num_batch_threads": args.num_batch_threads,
            "max_enqueued_batches": args.max_enqueued_batches,
            "allowed_batch_sizes": args.allowed_batch_sizes,
        }.items()
        if v is not None
    }
    batching_path = args.batching_output or os.path.join(os.path.dirname(output), "batching.config")
    print(export.model_config(entry, output, batching=batching or None, batching_path=batching_path), end="")
    command = f"tensorflow_model_server --rest_api_port=8501 --port=8500 --model_config_file={output}"
    if batching:
        command += f" --enable_batching --batching_parameters_file={batching_path}"
    print(f"\nWrote {output}{' and ' + batching_path if batching else ''}. Serve with:\n  {command}")
    return 0


def _report(args) -> int:
    from keras_mtl.report import find_runs, render_report

    if not find_runs(args.logdir):
        raise FileNotFoundError(f"No training runs (train/ or mtl/ event folders) under {args.logdir}.")
    print(render_report(args.logdir, args.output))
    return 0


def _tensorboard(args) -> int:
    import subprocess

    # Bound to loopback unless asked: TensorBoard has no authentication.
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir, "--host", args.host, "--port", str(args.port)]
    print(" ".join(command))
    return subprocess.call(command)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keras-mtl", description="Multi-task learning for Keras 3.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train, test, export and verify a model from a YAML config")
    t.add_argument("config", help="YAML run config, e.g. examples/census.yaml")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    t.add_argument("--strategy", choices=["auto", "default", "mirrored", "multi_worker", "tpu"],
                   help="tf.distribute strategy (overrides train.strategy)")
    t.set_defaults(fn=_train)

    e = sub.add_parser("export", help="export a .keras model as a TF Serving SavedModel version")
    e.add_argument("model", help="a .keras file saved from a keras_mtl model")
    e.add_argument("base_dir", help="the model's base path; the version is written beneath it")
    e.add_argument("--version", type=int, default=None)
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(fn=_export)

    v = sub.add_parser("verify", help="load an export as TF Serving does and run it on real rows")
    v.add_argument("path", help="an export version directory, e.g. saved_models/census/1")
    v.add_argument("--model", help="a .keras model whose answers the export must match")
    v.add_argument("--dataset", default="census_income", help="where sample rows come from: "
                   "census_income, trump_tweets, fashion_mnist or newsgroups")
    v.add_argument("--samples", type=int, default=32)
    v.set_defaults(fn=_verify)

    c = sub.add_parser(
        "serving-config",
        help="write a TF Serving models.config (versions, labels) and optionally a batching file",
    )
    c.add_argument("name", help="the model name clients use: /v1/models/NAME")
    c.add_argument("base_dir", help="the folder holding the model's version folders, e.g. saved_models/census")
    c.add_argument("-o", "--output", help="models.config path (default: beside BASE_DIR)")
    policy = c.add_mutually_exclusive_group()
    policy.add_argument("--latest", type=int, metavar="N", help="serve the N highest versions")
    policy.add_argument("--versions", type=int, nargs="+", metavar="V", help="serve exactly these versions")
    policy.add_argument("--all-versions", action="store_true", help="serve every version on disk")
    c.add_argument("--label", type=_label, action="append", metavar="LABEL=VERSION",
                   help="version label, e.g. stable=1 (repeatable)")
    c.add_argument("--server-base-path", help="the base path as the server sees it (e.g. inside a container)")
    c.add_argument("--max-batch-size", type=int, help="turn on batching and write a batching parameters file")
    c.add_argument("--batch-timeout-micros", type=int)
    c.add_argument("--num-batch-threads", type=int)
    c.add_argument("--max-enqueued-batches", type=int)
    c.add_argument("--allowed-batch-sizes", type=int, nargs="+", metavar="N")
    c.add_argument("--batching-output", help="batching parameters path (default: beside models.config)")
    c.set_defaults(fn=_serving_config)

    r = sub.add_parser("report", help="render an HTML report (PNG plots) of the runs under LOGDIR")
    r.add_argument("logdir")
    r.add_argument("-o", "--output", help="HTML file (default LOGDIR/report.html)")
    r.set_defaults(fn=_report)

    b = sub.add_parser("tensorboard", help="start TensorBoard on LOGDIR, bound to 127.0.0.1")
    b.add_argument("logdir")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, default=6006)
    b.set_defaults(fn=_tensorboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-mtl` console script.

    Example (trains, tests, exports and verifies in about half a minute)::

        main(["train", "examples/census.yaml", "--set", "data.limit=5000", "--set", "train.epochs=1"])
    """
    args = parser().parse_args(argv)
    from keras_mtl.config import ConfigError
    from keras_mtl.export import ServingConfigError
    from keras_mtl.saving import CorruptModelFileError

    try:
        return args.fn(args)
    except (
        ConfigError, ServingConfigError, CorruptModelFileError, FileExistsError, FileNotFoundError,
        ModuleNotFoundError, FloatingPointError,
    ) as e:
        print(f"keras-mtl: error: {e}", file=sys.stderr)
        # FloatingPointError (StopOnNonFiniteLoss): the run itself failed, not its invocation.
        return 1 if isinstance(e, FloatingPointError) else 2


if __name__ == "__main__":
    sys.exit(main())
