"""Issue 27: a pretrained encoder as the shared trunk (`trunks.pretrained`), per training mode.

Data: 20 Newsgroups (`mtl.data.newsgroups`), two tasks on the same post:
`fine` (20 groups) and `coarse` (7 hierarchies). Nothing bundled here has a
sentiment label, so the issue's "sentiment + topic" is two topic tasks.

1. The backbone is pretrained by this benchmark: a WordPiece vocabulary
   (`keras_hub.tokenizers.compute_word_piece_vocabulary`) and a small
   `BertBackbone`, trained with masked-language modelling
   (`BertMaskedLM` + `BertMaskedLMPreprocessor`, dynamic masking) on the
   newsgroups train file only (11,293 posts; the test file, which every
   score here is on, is never seen). It is saved with `save_to_preset` in
   `--cache` and reused when it is there (the folder name holds the sizes).
2. Models: `shared_bottom` over `trunks.pretrained(preset, train=MODE)` for
   MODE in frozen / lora / task_lora / full, and over the from-scratch text
   trunk the CLI uses for this dataset (`training.default_trunk`:
   `trunks.text(data.vectorizer, units=64)`, a 2-layer CNN) at the CLI's
   256 words per post and at `--seq-len` words; and a control, `full_untrained`:
   the same BERT from random weights, trained fully (quality only). Same budget for every
   model: the same training examples, batch size, epochs, optimizer
   (Adam, `--lr`), seeds.
3. Reported per model: trainable parameters (in the encoder, and as a share
   of the backbone), accuracy and macro-F1 per task on `--test-limit`
   posts of the test file (mean +- std over `--seeds`), the median ms of a
   training step (batches in memory, `model.train_function` alone,
   after warm-up; the models alternate in rounds in this process, ratio to
   frozen), and peak memory of training (a fresh process per model:
   VmHWM reset through /proc/self/clear_refs after the model is built and
   compiled, then the peak of `--memory-steps` steps minus the RSS before
   them; CPU, so not tf.config.experimental.get_memory_info, which is
   GPU-only).

    .venv/bin/python benchmarks/bench_pretrained.py [--quick] [--cache /work/bench_cache]
        [--parts quality,timing,memory] [--seeds 0 1] [--epochs 2] [--layers 2] [--hidden 128]
        [--seq-len 128] [--vocab 8000] [--pretrain-epochs 3] [--lora-rank 4] [--test-limit 2000]
        [--only full_untrained,lora] [--merge LOG ...]   (--merge: add an earlier run's printed results)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.data import news20, splits as splits_lib  # noqa: E402
from keras_mtl.training import default_trunk  # noqa: E402

MODES = ("frozen", "lora", "task_lora", "full")
SCRATCH = "scratch"
UNTRAINED = "full_untrained"  # control: the same BERT, random weights, fine-tuned fully
TASKS = ("fine", "coarse")
RESERVED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and few examples, to check the script")
    p.add_argument("--cache", default="/work/bench_cache", help="folder of the pretrained presets")
    p.add_argument("--parts", default="quality,timing,memory")
    p.add_argument("--modes", default=",".join(MODES), help="pretrained modes, comma-separated")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab", type=int, default=8000)
    # tf-text's WordPiece learner takes minutes on all 11k posts: learn the vocabulary on a part of them.
    p.add_argument("--vocab-posts", type=int, default=4000, help="train posts the vocabulary is learned on")
    p.add_argument("--vocab-words", type=int, default=150, help="leading words of each of them")
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--lora-rank", type=int, default=4)
    # MLM alone trains neither [CLS] nor BERT's pooler (no next-sentence task): "mean" by default.
    p.add_argument("--pooling", default="mean", choices=["mean", "cls"])
    p.add_argument("--limit", type=int, default=None, help="posts of the train file used (default: all)")
    p.add_argument("--test-limit", type=int, default=2000, help="posts of the test file scored")
    p.add_argument("--scratch-words", type=int, default=256, help="the CLI's newsgroups sequence_length")
    p.add_argument("--timing-rounds", type=int, default=3)
    p.add_argument("--timing-steps", type=int, default=10, help="steps per model per round")
    p.add_argument("--memory-steps", type=int, default=20)
    p.add_argument("--only", default="", help="models to run, comma-separated (e.g. full_untrained,scratch_256)")
    p.add_argument("--merge", nargs="*", default=[], help="logs of earlier runs whose results join the table")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # one model, in a child process
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.layers, args.hidden, args.seq_len = args.seeds[:1], 1, 1, 32, 32
        args.vocab, args.pretrain_epochs, args.limit, args.test_limit = 1000, 1, 400, 200
        args.vocab_posts, args.vocab_words = 200, 50
        args.scratch_words, args.timing_rounds, args.timing_steps, args.memory_steps = 64, 2, 3, 5
    args.modes = [m for m in args.modes.split(",") if m]
    args.only = [m for m in args.only.split(",") if m]
    args.parts = [p for p in args.parts.split(",") if p]
    return args


def preset_dir(args) -> str:
    sizes = (f"L{args.layers}_H{args.hidden}_A{args.heads}_T{args.seq_len}_V{args.vocab}"
             f"_{args.vocab_posts}x{args.vocab_words}_E{args.pretrain_epochs}")
    return os.path.join(args.cache, f"bert_newsgroups_{sizes}_n{args.limit or 'all'}")


def pretrain(args) -> dict:
    """The backbone preset pretrained by masked-language modelling on the train file; made once, then reused."""
    import keras_hub

    folder = preset_dir(args)
    record_path = os.path.join(folder, "pretraining.json")
    if os.path.exists(record_path):
        with open(record_path) as f:
            return {**json.load(f), "preset": folder, "reused": True}
    texts = news20.read_split("train", args.limit)[0]["text"].astype(str)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    sample = [" ".join(t.split()[: args.vocab_words]) for t in texts[splits_lib.subset(len(texts), args.vocab_posts)]]
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(sample).batch(1000), args.vocab, lowercase=True, reserved_tokens=RESERVED
    )
    vocab_seconds = time.perf_counter() - start
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=args.layers, num_heads=args.heads, hidden_dim=args.hidden,
        intermediate_dim=4 * args.hidden, max_sequence_length=args.seq_len,
    )
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer, sequence_length=args.seq_len, mask_selection_length=max(4, int(0.15 * args.seq_len) + 1)
    )
    mlm = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    steps = -(-len(texts) // args.batch_size) * args.pretrain_epochs
    warmup = max(1, steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, warmup_target=args.pretrain_lr, warmup_steps=warmup
    )
    mlm.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    # Masks are drawn anew every epoch (the map runs each time: dynamic masking).
    ds = (tf.data.Dataset.from_tensor_slices(texts).shuffle(len(texts), seed=0)
          .batch(args.batch_size).map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
    start = time.perf_counter()
    history = mlm.fit(ds, epochs=args.pretrain_epochs, verbose=2)
    seconds = time.perf_counter() - start
    os.makedirs(folder, exist_ok=True)
    backbone.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    record = {
        "texts": int(len(texts)), "vocabulary_from": f"{len(sample)} posts x {args.vocab_words} words",
        "vocabulary": len(vocabulary), "epochs": args.pretrain_epochs, "steps": steps,
        "batch_size": args.batch_size, "peak_lr": args.pretrain_lr, "vocabulary_seconds": round(vocab_seconds, 1),
        "mlm_seconds": round(seconds, 1), "mlm_loss": [round(v, 4) for v in history.history["loss"]],
        "masked_accuracy": [round(v, 4) for v in history.history["accuracy"]],
        "backbone_params": int(backbone.count_params()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return {**record, "preset": folder, "reused": False}


def load_data(args, seed: int, words: int):
    """Newsgroups (validation split and shuffling follow `seed`); the vectorizer keeps `words` per post."""
    return mtl.data.newsgroups(
        batch_size=args.batch_size, limit=args.limit, seed=seed, sequence_length=words
    )


def test_posts(args):
    """A fixed random subset of the test file: texts and both labels."""
    features, labels = news20.read_split("test")
    keep = splits_lib.subset(len(features["text"]), args.test_limit, seed=1)
    return features["text"][keep], {k: v[keep] for k, v in labels.items()}


def build(args, kind: str, data, preset: str):
    """The shared-bottom model of `kind` (a pretrained mode or "scratch*"), compiled."""
    if kind.startswith(SCRATCH):
        trunk = default_trunk(data, [128, 64])  # the CLI's trunk for text data (model.trunk.units default)
    elif kind == UNTRAINED:
        import keras_hub

        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=False)
        trunk = mtl.trunks.pretrained(backbone, preprocessor=preset, train="full", pooling=args.pooling,
                                      sequence_length=args.seq_len)
    else:
        trunk = mtl.trunks.pretrained(preset, train=kind, lora_rank=args.lora_rank, pooling=args.pooling,
                                      sequence_length=args.seq_len)
    model = mtl.models.shared_bottom(data.inputs, data.tasks, trunk=trunk)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    return model


def count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def parameters(model, backbone: int | None) -> dict:
    """Trainable parameters in the encoder (trunk and per-task adapters) and in the heads.

    `backbone` is the pretrained backbone's own size (the preset's), which
    `count_params()` of a backbone with Keras' LoRA enabled would overstate.
    """
    heads = count(w for t in TASKS for w in model.get_layer(t).trainable_weights)
    total = count(model.trainable_weights)
    return {"encoder_trainable": total - heads, "heads": heads, "total_trainable": total, "backbone": backbone}


def scores(model, texts, labels) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    predictions = model.predict({"text": texts}, batch_size=256, verbose=0)
    out = {}
    for t in TASKS:
        guess = np.argmax(predictions[t], axis=-1)
        out[t] = {"accuracy": float(accuracy_score(labels[t], guess)),
                  "macro_f1": float(f1_score(labels[t], guess, average="macro"))}
    return out


def kinds(args, control: bool = False) -> list:
    """The models compared: the pretrained modes (and the untrained control, for quality), the scratch trunks."""
    if args.only:
        return args.only
    extra = [f"{SCRATCH}_{args.seq_len}"] if args.seq_len != args.scratch_words else []
    untrained = [UNTRAINED] if control and "full" in args.modes else []
    return [*args.modes, *untrained, f"{SCRATCH}_{args.scratch_words}", *extra]


def words_of(args, kind: str) -> int:
    return int(kind.rsplit("_", 1)[1]) if kind.startswith(SCRATCH) else args.scratch_words


def quality(args, record: dict, texts, labels) -> dict:
    preset, results = record["preset"], {}
    for seed in args.seeds:
        for kind in kinds(args, control=True):
            data = load_data(args, seed, words_of(args, kind))
            keras.utils.set_random_seed(seed)
            model = build(args, kind, data, preset)
            start = time.perf_counter()
            model.fit(data.train, epochs=args.epochs, verbose=0)
            seconds = time.perf_counter() - start
            size = None if kind.startswith(SCRATCH) else record["backbone_params"]
            r = results.setdefault(kind, {"params": parameters(model, size), "runs": []})
            r["runs"].append({"seed": seed, "fit_seconds": round(seconds, 1), **scores(model, texts, labels)})
            print(json.dumps({kind: {"params": r["params"], **r["runs"][-1]}}), flush=True)
            del model
            keras.backend.clear_session()
    return results


def time_steps(model, batches) -> list:
    """Seconds of each training step over `batches` in memory (the step alone)."""
    function, it, times = model.train_function, iter(batches), []
    for _ in batches:
        start = time.perf_counter()
        logs = function(it)
        float(keras.ops.convert_to_numpy(logs["loss"]))  # wait for the step
        times.append(time.perf_counter() - start)
    return times


def timing(args, record: dict) -> tuple[dict, dict]:
    """Median ms per step of every model, the models alternating in rounds in this process; their parameters."""
    models, batches, params = {}, {}, {}
    for kind in kinds(args):
        data = load_data(args, 0, words_of(args, kind))
        keras.utils.set_random_seed(0)
        models[kind] = build(args, kind, data, record["preset"])
        params[kind] = parameters(models[kind], None if kind.startswith(SCRATCH) else record["backbone_params"])
        models[kind].fit(data.train.take(3), epochs=1, verbose=0)  # traces the step: warm-up
        batches[kind] = list(data.train.take(args.timing_steps))
    times = {kind: [] for kind in models}
    for _ in range(args.timing_rounds):
        for kind, model in models.items():
            times[kind] += time_steps(model, batches[kind])
    return {kind: 1000 * statistics.median(t) for kind, t in times.items()}, params


def status(key: str) -> int:
    """A field of /proc/self/status, in kB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def memory_probe(args, preset: str, kind: str) -> None:
    """In a child process: peak RSS growth over `--memory-steps` training steps of one model."""
    data = load_data(args, 0, words_of(args, kind))
    keras.utils.set_random_seed(0)
    model = build(args, kind, data, preset)
    train = data.train.take(args.memory_steps)
    list(train.take(1))  # the input pipeline started, as for every model
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak RSS) to the current RSS
    model.fit(train, epochs=1, verbose=0)
    print(json.dumps({"memory": {"rss_before_mb": before / 1024, "peak_growth_mb": (status("VmHWM") - before) / 1024}}))


def memory(args) -> dict:
    out = {}
    for kind in kinds(args):
        argv = [sys.executable, __file__, "--memory-probe", kind, *sys.argv[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        line = [x for x in done.stdout.splitlines() if x.startswith('{"memory"')][-1]
        out[kind] = json.loads(line)["memory"]
        print(json.dumps({kind: out[kind]}), flush=True)
    return out


def mean_std(values) -> str:
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def merge(paths, results, ms, mem) -> None:
    """Adds the results an earlier run printed (its JSON lines) to those of this run."""
    for path in paths:
        with open(path) as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                (key, value), = json.loads(line).items()
                if key == "ms_per_step":
                    ms.update(value)
                elif "seed" in value:
                    r = results.setdefault(key, {"params": value.pop("params"), "runs": []})
                    value.pop("params", None)
                    r["runs"].append(value)
                elif "peak_growth_mb" in value:
                    mem[key] = value


def report(args, record, results, ms, mem) -> None:
    print(f"\npreset {record['preset']} ({'reused' if record['reused'] else 'pretrained now'}): "
          f"{record['backbone_params']:,} parameters, MLM {record['epochs']} epochs / {record['steps']} steps "
          f"on {record['texts']:,} posts in {record['mlm_seconds']} s, loss {record['mlm_loss']}, "
          f"masked accuracy {record['masked_accuracy']}")
    seeds = ", ".join(map(str, args.seeds))
    print(f"\n| trunk | trainable in encoder | share of backbone | heads | step ms (median) | × frozen "
          f"| peak RSS growth MB | fine acc % | fine macro-F1 % | coarse acc % | coarse macro-F1 % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    order = [k for k in kinds(args, control=True) if k in results or k in ms or k in mem]
    for kind in order + sorted(set(results) - set(order)):
        r = results.get(kind)
        p = r["params"] if r else None
        if kind.startswith(SCRATCH):
            cells = [kind.replace(f"{SCRATCH}_", "from scratch, CNN, ") + " words"]
        else:
            cells = ["full, not pretrained (random init)" if kind == UNTRAINED else kind]
        cells.append(f"{p['encoder_trainable']:,}" if p else "")
        cells.append(f"{p['encoder_trainable'] / p['backbone']:.2%}" if p and p["backbone"] else "")
        cells.append(f"{p['heads']:,}" if p else "")
        cells.append(f"{ms[kind]:.1f}" if kind in ms else "")
        cells.append(f"{ms[kind] / ms['frozen']:.2f}" if kind in ms and "frozen" in ms else "")
        cells.append(f"{mem[kind]['peak_growth_mb']:.0f}" if kind in mem else "")
        for t in TASKS:
            for metric in ("accuracy", "macro_f1"):
                cells.append(mean_std([run[t][metric] for run in r["runs"]]) if r and r["runs"] else "")
        print("| " + " | ".join(cells) + " |")
    print(f"\n(seeds {seeds}; {args.epochs} epochs, batch {args.batch_size}, Adam {args.lr}; "
          f"test: {args.test_limit} posts of the test file)")


def main() -> None:
    args = arguments()
    record = pretrain(args)
    if args.memory_probe:
        memory_probe(args, record["preset"], args.memory_probe)
        return
    print(json.dumps({"pretraining": record}), flush=True)
    results, ms, mem = {}, {}, {}
    if "quality" in args.parts:
        texts, labels = test_posts(args)
        results = quality(args, record, texts, labels)
    if "timing" in args.parts:
        ms, params = timing(args, record)
        for kind, p in params.items():
            results.setdefault(kind, {"params": p, "runs": []})
        print(json.dumps({"ms_per_step": ms}), flush=True)
    if "memory" in args.parts:
        mem = memory(args)
    merge(args.merge, results, ms, mem)
    report(args, record, results, ms, mem)


if __name__ == "__main__":
    main()
