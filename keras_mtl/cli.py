"""`keras-mtl`: train, export and verify multi-task models from the command line.

    keras-mtl train CONFIG.yaml [--set key=value ...]
    keras-mtl compare CONFIG.yaml [--seeds 3] [--architectures A,B] [--weightings W,V] [--group 'a,b|c'] [--suggest-groups]
    keras-mtl export MODEL.keras BASE_DIR [--version N] [--overwrite] [--quantize int8|float16] [--samples FILE]
    keras-mtl verify EXPORT_DIR [--model MODEL.keras] [--samples FILE | --dataset NAME] [--rows N]
    keras-mtl predict EXPORT_OR_MODEL INPUT -o scores.csv|scores.parquet [--keep COL ...]
    keras-mtl serving-config NAME BASE_DIR [--label stable=1 ...] [--max-batch-size N ...]
    keras-mtl explain RUN_OR_MODEL --data FILE [--rows N] [--tasks a,b] [--method M] [-o DIR]
    keras-mtl report LOGDIR [-o report.html]
    keras-mtl tensorboard LOGDIR [--port 6006]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# Where TF Serving looks for warmup requests (keras_mtl.export.warmup.WARMUP_FILE, without importing TF here).
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
FORMATS = ("csv", "parquet", "jsonl", "tfrecord")  # keras_mtl.data.files.FORMATS


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


def _compare(args) -> int:
    from keras_mtl import comparison
    from keras_mtl import config as config_lib

    overrides = list(args.set or [])
    cfg = config_lib.load(args.config, overrides)
    split = lambda text: [v.strip() for v in text.split(",") if v.strip()]  # noqa: E731
    architectures = split(args.architectures) if args.architectures else [cfg.model.architecture]
    weightings = split(args.weightings) if args.weightings else [cfg.train.weighting]
    for a in architectures:  # the config's own checks name a wrong architecture or weighting
        config_lib.load(args.config, overrides + [f"model.architecture={a}"])
    for w in weightings:
        config_lib.load(args.config, overrides + [f"train.weighting={w}"])
    task_names = [t.name for t in cfg.tasks]
    try:
        groupings = [comparison.parse_groups(g, task_names) for g in args.group or []] if task_names else []
        if args.group and not task_names:
            raise UsageError("--group needs the config's tasks: list them under tasks:.")
        metrics = dict(_metric(m) for m in args.metric or [])
        result = comparison.compare(
            cfg,
            variants=[(a, w) for a in architectures for w in weightings],
            seeds=args.seeds,
            groupings=groupings,
            suggest_groups=args.suggest_groups,
            metrics=metrics,
            output_dir=args.output,
        )
    except ValueError as e:
        if isinstance(e, (config_lib.ConfigError, UsageError)):
            raise
        raise UsageError(str(e)) from e
    print()
    print(result.table())
    print(f"\nWrote {result.output_dir}/comparison.csv and comparison.json; "
          f"TensorBoard HParams: tensorboard --logdir {result.output_dir}/runs --host 127.0.0.1")
    print(f"Done in {result.seconds:.0f} s.")
    return 0


def _metric(text: str) -> tuple[str, str]:
    task, sep, metric = text.partition("=")
    if not sep or not task or not metric:
        raise UsageError(f"--metric takes TASK=METRIC (e.g. hours=rmse), got {text!r}")
    return task, metric


def _export(args) -> int:
    from keras_mtl import export, saving

    model = saving.load_model(args.model)
    samples = None
    if args.samples is not None:
        samples = _read_rows(args, export.signatures.input_specs(model), f"the model {args.model}")
    try:
        path = export.export_saved_model(
            model, args.base_dir, args.version, overwrite=args.overwrite, warmup_samples=samples,
            quantize=args.quantize,
        )
    except export.QuantizationError as e:
        raise UsageError(str(e)) from None
    print(path)
    if args.quantize:
        # On stderr: stdout stays the one path, for scripts.
        report = _compression_report(export.read_metadata(path)["quantization"], samples)
        if samples is not None:
            report += "\n" + _latency_change(model, path, samples)
        print(report, file=sys.stderr)
    return 0


def _latency_change(model, path: str, samples) -> str:
    """serving_default's latency at batch 1 and 256, float32 export (written to a temporary folder) vs `path`."""
    import tempfile

    from keras_mtl import export

    with tempfile.TemporaryDirectory() as folder:
        plain = export.serving_latency(export.export_saved_model(model, folder), samples)
    small = export.serving_latency(path, samples)
    return "serving_default latency here (median of 100 calls): " + ", ".join(
        f"batch {b}: {plain[b]:.2f} ms -> {small[b]:.2f} ms" for b in plain
    )


def _compression_report(summary: dict, samples) -> str:
    """What `export --quantize` did: the size change, the layers left in float, the outputs' change."""
    mode = summary["mode"]
    sizes = summary["weight_bytes"]
    lines = [
        f"{mode}: weights {sizes['float'] / 1e3:,.1f} kB (float32) -> {sizes[mode] / 1e3:,.1f} kB ({mode}), "
        f"{summary['ratio']:.2f}x; variables/ on disk {summary['variables_bytes'] / 1e3:,.1f} kB",
        f"quantized: {', '.join(f'{path} ({kind})' for path, kind in summary['quantized'].items())}",
    ]
    if summary["left_float"]:
        left = ", ".join(f"{path} ({kind})" for path, kind in summary["left_float"].items())
        lines.append(f"left in float32: {left}")
    diffs = summary.get("max_abs_diff_vs_float")
    if diffs:
        each = ", ".join(f"{name} {diff:.2g}" for name, diff in diffs.items())
        lines.append(
            f"max |difference| from the float32 model on {len(samples)} sample rows: {max(diffs.values()):.2g} ({each})"
        )
    else:
        lines.append("outputs not compared with the float32 model: pass --samples FILE (rows of its inputs)")
    return "\n".join(lines)


class UsageError(ValueError):
    """A command-line argument that cannot work (a one-line `keras-mtl: error: ...`, exit code 2)."""


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _read_rows(args, specs, what: str):
    """The first `--rows` rows of `--samples FILE`, one column per input in `specs` (`what` takes them)."""
    from keras_mtl.data import files

    text = [name for name, spec in specs.items() if spec.dtype.name == "string"]
    try:
        return files.read_frame(
            args.samples, format=args.format, columns=list(specs), nrows=args.rows, text_columns=text
        )
    except files.MissingColumnError as e:
        raise UsageError(_missing_input(e, specs, what)) from None


def _missing_input(e, specs, what: str) -> str:
    """Rewords a missing-column error of a rows file: it is an input the export takes."""
    name = next((c for c in e.missing if c in specs), None)
    if name is None:
        return str(e)
    spec = specs[name]
    return (
        f"{e.path} has no column {name!r}, an input of {what} ({spec.dtype.name}, shape "
        f"{spec.shape.as_list()}); its columns: {', '.join(e.columns)}."
    )


def _verify(args) -> int:
    from keras_mtl import export, saving

    path = export.resolve(args.path)
    if args.samples is not None and args.dataset is not None:
        raise UsageError("give --samples FILE or --dataset NAME, not both.")
    model = saving.load_model(args.model) if args.model else None
    specs = export.client.feature_specs(path)
    if args.samples is not None:
        if args.samples.isdigit() and not os.path.exists(args.samples):
            raise UsageError(
                f"--samples takes a file of rows (CSV, JSON lines, Parquet), not a count ({args.samples}); "
                f"for rows of a bundled dataset use --dataset NAME --rows {args.samples}."
            )
        samples = _read_rows(args, specs, f"the export at {path}")
    elif args.dataset is not None:
        from keras_mtl import data as data_lib

        if args.dataset not in data_lib.datasets.available():
            raise UsageError(
                f"--dataset must be one of {', '.join(data_lib.datasets.available())}; got {args.dataset!r}."
            )
        dataset = data_lib.datasets.get(args.dataset)(limit=max(args.rows, 16), batch_size=args.rows)
        rows = dataset.sample(args.rows, "test")
        missing = [name for name in specs if name not in rows]
        if missing:
            raise UsageError(
                f"dataset {args.dataset!r} has no column {missing[0]!r}, an input of the export at {path} "
                f"({len(missing)} of its {len(specs)} inputs are missing): verify it with --samples FILE."
            )
        samples = {name: rows[name] for name in specs}
    else:
        if not os.path.isfile(os.path.join(path, WARMUP_FILE)):
            raise UsageError(
                f"{path} has no warmup requests ({WARMUP_FILE}) to replay; "
                "pass --samples FILE (rows with the export's inputs) or --dataset NAME."
            )
        samples = None
    report = export.verify(path, samples, model)
    print(json.dumps(report, indent=2))
    if report["cast"]:
        casts = ", ".join(f"{k} {v}" for k, v in report["cast"].items())
        print(
            f"Note: the samples were cast to the signature's dtypes ({casts}); gRPC and Python clients "
            "must send those dtypes (keras_mtl.export.request and Predictor cast them).",
            file=sys.stderr,
        )
    return 0


def _predict(args) -> int:
    import pandas as pd

    from keras_mtl import export
    from keras_mtl.data import files

    writer = files.FrameWriter(args.output)  # a bad output path fails before anything is loaded or read
    predictor = export.Predictor(args.source)
    specs = predictor.inputs
    keep = list(dict.fromkeys(args.keep or []))
    # String inputs are read as written: a CSV cell "007" or "NA" is a category, not 7 or NaN.
    text = [name for name, spec in specs.items() if spec.dtype.name == "string"]
    chunks = files.iter_frames(
        args.input, args.chunk_rows, format=args.format, columns=list(dict.fromkeys([*specs, *keep])),
        text_columns=text,
    )
    with writer:  # the output appears only once every chunk is written
        try:
            for chunk in chunks:
                try:
                    scores = predictor.scores(chunk, args.batch_size)
                except export.RequestError as e:  # rows are numbered within the file the chunk is from
                    raise export.RequestError(f"{chunk.attrs['source']}: {e}") from None
                clash = [c for c in keep if c in scores.columns]
                if clash:
                    raise UsageError(
                        f"--keep {clash[0]!r} is also a score column (scores: {', '.join(scores.columns)})."
                    )
                writer.write(pd.concat([chunk[keep], scores], axis=1))
        except files.MissingColumnError as e:
            if any(c in specs for c in e.missing):
                raise UsageError(_missing_input(e, specs, f"the model {predictor.source}")) from None
            raise UsageError(f"--keep: {e}") from None
    print(f"Wrote {writer.rows} rows ({', '.join(writer.columns)}) to {args.output}.")
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


def _explained_model(source: str):
    """The `.keras` model behind `source` and the folder its explanation goes to by default:
    a run's log folder (`<run>/explain`, the checkpoint found through the run's config.yaml),
    a checkpoint folder or a `.keras` file (`<folder>/explain`)."""
    from pathlib import Path

    import yaml

    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source} does not exist.")
    if path.is_dir() and any((p / "saved_model.pb").is_file() for p in (path, *path.iterdir()) if p.is_dir()):
        raise UsageError(
            f"{source} is a SavedModel export; explain needs the Keras model it was exported from "
            "(gradients cannot pass an export's string lookups): pass the run's log folder or its best.keras."
        )
    if path.is_file():
        return path, path.parent / "explain"
    if (path / "best.keras").is_file():
        return path / "best.keras", path / "explain"
    if (path / "config.yaml").is_file():
        cfg = yaml.safe_load((path / "config.yaml").read_text()) or {}
        output = cfg.get("output") or {}
        checkpoint = Path(output.get("checkpoint_dir", "checkpoints")) / str(cfg.get("name", "")) / path.name / "best.keras"
        if not checkpoint.is_file():
            raise UsageError(
                f"the run at {source} has no checkpoint at {checkpoint} (paths in its config.yaml are "
                "relative to where it was trained: run explain from there, or pass the best.keras file)."
            )
        return checkpoint, path / "explain"
    raise UsageError(f"{source} is neither a .keras file, a checkpoint folder (best.keras) nor a run's log folder.")


def _explain(args) -> int:
    from keras_mtl import explanations, saving
    from keras_mtl.data import files
    from keras_mtl.export import signatures
    from keras_mtl.explanations.pictures import write_tensorboard

    model_path, default_output = _explained_model(args.source)
    model = saving.load_model(model_path)
    specs = signatures.input_specs(model)
    text = [name for name, spec in specs.items() if spec.dtype.name == "string"]
    try:
        rows = files.read_frame(args.data, format=args.format, columns=list(specs), nrows=args.rows, text_columns=text)
    except files.MissingColumnError as e:
        raise UsageError(_missing_input(e, specs, f"the model {model_path}")) from None
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    explanation = explanations.explain(model, rows, tasks, method=args.method, steps=args.steps)
    output = explanation.save(args.output or default_output)
    write_tensorboard(explanation.summary(), output)
    for task in explanation.tasks:
        top = explanation.top(task, 5)
        print(f"{task}: " + ", ".join(f"{c} {v:.3g}" for c, v in top.items()))
    sharing = explanation.sharing()
    shared = sharing.index[sharing["kind"] == "shared"].tolist()
    threshold = explanation.summary()["sharing_threshold"]
    print(f"Shared columns (>= {threshold:.0%} of two tasks' attribution): {', '.join(shared) or 'none'}")
    gaps = ", ".join(f"{t} {g:.2g}" for t, g in explanation.completeness_gap().items())
    print(f"Completeness gap (max |sum of credits - (f(x) - f(baseline))|; more --steps shrink it): {gaps}")
    if explanation.experts is not None and explanation.experts.collapsed:
        print("Collapsed experts (output cosine > 0.95): " + ", ".join(
            f"{layer}/{i}~{j} ({cos:.3f})" for layer, i, j, cos in explanation.experts.collapsed
        ))
    print(f"Wrote {output} (explanation.json, importance.csv, attributions per task, TensorBoard images).")
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

    m = sub.add_parser("compare", help="single-task baselines vs multi-task settings over seeds: per-task "
                       "metrics, Δm, differences beyond the seed noise")
    m.add_argument("config", help="YAML run config; its data, trunk, optimizer and epochs are every run's budget")
    m.add_argument("--seeds", type=_positive_int, default=3, metavar="N", help="seeds per setting (default 3)")
    m.add_argument("--architectures", metavar="A,B", help="multi-task architectures (default: the config's)")
    m.add_argument("--weightings", metavar="W,V", help="weighting methods, crossed with --architectures "
                   "(default: the config's)")
    m.add_argument("--group", action="append", metavar="'a,b|c'",
                   help="a task grouping to train too: groups split by |, tasks by , (repeatable)")
    m.add_argument("--suggest-groups", action="store_true",
                   help="measure task affinity and train the groupings it suggests (3 tasks or more)")
    m.add_argument("--metric", action="append", metavar="TASK=METRIC",
                   help="the metric compared for a task (default: its first, e.g. auc, mae)")
    m.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    m.add_argument("-o", "--output", help="output folder (default LOGS_DIR/NAME/compare-TIME)")
    m.set_defaults(fn=_compare)

    e = sub.add_parser("export", help="export a .keras model as a TF Serving SavedModel version")
    e.add_argument("model", help="a .keras file saved from a keras_mtl model")
    e.add_argument("base_dir", help="the model's base path; the version is written beneath it")
    e.add_argument("--version", type=int, default=None)
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--quantize", choices=["int8", "float16"], help="export a compressed copy: int8 Dense/Embedding "
                   "kernels (weight-only, about 0.3x the float32 size) or float16 weights and compute (about 0.5x)")
    e.add_argument("--samples", metavar="FILE", help="rows with the model's inputs (CSV, JSON lines, Parquet, "
                   "TFRecord): written as warmup requests, and with --quantize compared with the float32 model")
    e.add_argument("--format", choices=FORMATS, help="the format of --samples (default: from its extension)")
    e.add_argument("--rows", type=_positive_int, default=8, metavar="N", help="rows of --samples used (default 8)")
    e.set_defaults(fn=_export)

    v = sub.add_parser("verify", help="load an export as TF Serving does and check every signature's answers")
    v.add_argument("path", help="an export version directory (e.g. saved_models/census/1), or its base directory")
    v.add_argument("--model", help="a .keras model whose answers the export must match")
    v.add_argument("--samples", metavar="FILE", help="rows to send, with a column per input (CSV, JSON lines, "
                   "Parquet, TFRecord; default: replay the export's own warmup requests)")
    v.add_argument("--format", choices=FORMATS, help="the format of --samples (default: from its extension)")
    v.add_argument("--dataset", metavar="NAME", help="send rows of a bundled dataset instead: census_income, "
                   "trump_tweets, fashion_mnist or newsgroups")
    v.add_argument("--rows", type=_positive_int, default=32, metavar="N",
                   help="rows to send from --samples or --dataset (default 32)")
    v.set_defaults(fn=_verify)

    s = sub.add_parser("predict", help="score a table file with an export or a .keras model, chunk by chunk")
    s.add_argument("source", metavar="EXPORT_OR_MODEL",
                   help="a SavedModel version directory, its base directory (highest version), or a .keras file")
    s.add_argument("input", metavar="INPUT", help="rows to score: CSV/TSV, JSON lines, Parquet or TFRecord "
                   "(a glob reads several files)")
    s.add_argument("-o", "--output", required=True, help="scores.csv or scores.parquet (written when complete)")
    s.add_argument("--format", choices=FORMATS, help="the format of INPUT (default: from its extension)")
    s.add_argument("--batch-size", type=_positive_int, default=1024, metavar="N", help="rows per model call (1024)")
    s.add_argument("--chunk-rows", type=_positive_int, default=65536, metavar="N",
                   help="rows read, scored and written at a time (65536)")
    s.add_argument("--keep", nargs="+", metavar="COL", help="input columns copied to the output, e.g. an id")
    s.set_defaults(fn=_predict)

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

    x = sub.add_parser("explain", help="per-task attributions to the raw input columns, shared vs "
                       "task-specific columns, expert usage")
    x.add_argument("source", metavar="RUN_OR_MODEL",
                   help="a run's log folder (logs/NAME/RUN), its checkpoint folder or a .keras file")
    x.add_argument("--data", required=True, metavar="FILE", help="rows to explain: CSV/TSV, JSON lines, "
                   "Parquet or TFRecord with a column per model input")
    x.add_argument("--format", choices=FORMATS, help="the format of --data (default: from its extension)")
    x.add_argument("--rows", type=_positive_int, default=1000, metavar="N", help="rows explained (default 1000)")
    x.add_argument("--tasks", metavar="A,B", help="tasks to explain (default: all)")
    x.add_argument("--method", default="integrated_gradients", choices=["integrated_gradients", "gradient_x_input"])
    x.add_argument("--steps", type=_positive_int, default=64, metavar="N",
                   help="integrated-gradients quadrature nodes (default 64)")
    x.add_argument("-o", "--output", help="output folder (default: RUN/explain, or beside the .keras file)")
    x.set_defaults(fn=_explain)

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
    from keras_mtl.data.files import DataFileError
    from keras_mtl.explanations import ExplainError
    from keras_mtl.export import ExportError, RequestError, ServingConfigError, VerificationError
    from keras_mtl.saving import CorruptModelFileError, UnsafeModelFileError

    try:
        return args.fn(args)
    except (
        ConfigError, ServingConfigError, CorruptModelFileError, UnsafeModelFileError, OSError, ModuleNotFoundError,
        FloatingPointError, UsageError, DataFileError, ExportError, RequestError, VerificationError, ExplainError,
    ) as e:
        # OSError: a full disk, a read-only folder, a missing file: what and where, in one line.
        print(f"keras-mtl: error: {e}", file=sys.stderr)
        # FloatingPointError (StopOnNonFiniteLoss) and VerificationError (an export that answers
        # wrongly): the run itself failed, not its invocation.
        return 1 if isinstance(e, (FloatingPointError, VerificationError)) else 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "parser"]
