"""Fine-tune a sequence classifier with the Hugging Face Trainer, under the SageMaker contract.

The hyperparameter interface of the SageMaker getting-started guide's script (epochs,
train_batch_size, eval_batch_size, warmup_steps, model_name, learning_rate; folders from
SM_*), plus max_steps. The same file runs in every sagetwin backend and on SageMaker.

Differences from the guide's script, both for speed and portability:
- batches are padded dynamically and grouped by length instead of padding every review
  to 512 tokens (the data may still be pre-padded; then grouping changes nothing);
- it runs on transformers 4.26 through 5.x (eval_strategy/evaluation_strategy,
  processing_class/tokenizer are chosen by what the installed version accepts).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import time

import numpy as np
import torch
from datasets import load_from_disk
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

logger = logging.getLogger(__name__)
DEFAULT_LABELS = {2: ["NEGATIVE", "POSITIVE"]}
READABLE = {"neg": "NEGATIVE", "pos": "POSITIVE", "negative": "NEGATIVE", "positive": "POSITIVE"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    # hyperparameters sent by the client are passed as command-line arguments to the script
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--warmup_steps", type=int, default=500)
    parser.add_argument("--model_name", type=str, required=True)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--max_steps", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--logging_steps", type=int, default=10)
    parser.add_argument("--group_by_length", type=lambda v: str(v).lower() in ("1", "true", "yes"), default=True,
                        help="batch reviews of similar length together (much less padding)")
    # data, model, and output directories
    parser.add_argument("--output_data_dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
    parser.add_argument("--model_dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--n_gpus", type=str, default=os.environ["SM_NUM_GPUS"])
    parser.add_argument("--training_dir", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    parser.add_argument("--test_dir", type=str, default=os.environ["SM_CHANNEL_TEST"])
    # managed spot training: checkpoints every N steps into the folder SageMaker syncs with
    # checkpoint_s3_uri (/opt/ml/checkpoints), and a restarted job resumes from the newest one
    parser.add_argument("--checkpoint_dir", type=str, default=None)
    parser.add_argument("--save_steps", type=int, default=0)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.warning("ignoring unknown arguments: %s", unknown)
    return args


def label_names(dataset, num_labels: int) -> list[str]:
    """Readable labels: the dataset's ClassLabel names, else NEGATIVE/POSITIVE for two classes."""
    feature = dataset.features.get("labels")
    names = getattr(feature, "names", None)
    if names and len(names) == num_labels:
        return [READABLE.get(str(n).lower(), str(n)) for n in names]
    return DEFAULT_LABELS.get(num_labels, [f"LABEL_{i}" for i in range(num_labels)])


def count_labels(dataset) -> int:
    feature = dataset.features.get("labels")
    if getattr(feature, "num_classes", None):
        return int(feature.num_classes)
    return int(max(int(x) for x in dataset.with_format(None)["labels"])) + 1


def with_lengths(dataset):
    """Precompute token counts so length grouping does not scan the data at startup."""
    if "length" in dataset.column_names:
        return dataset
    fmt = dataset.format
    lengths = [len(ids) for ids in dataset.with_format(None)["input_ids"]]
    dataset = dataset.add_column("length", lengths)
    # the sampler reads rows' "length" (transformers 4.x); the Trainer drops it before the model sees it
    columns = None if fmt["columns"] is None else [*fmt["columns"], "length"]
    dataset.set_format(fmt["type"], columns=columns, output_all_columns=fmt["output_all_columns"])
    return dataset


def compute_metrics(pred) -> dict[str, float]:
    """accuracy, f1, precision, recall as the guide reports them (binary average when 2 classes)."""
    labels = np.asarray(pred.label_ids)
    preds = np.asarray(pred.predictions).argmax(-1)
    accuracy = float((preds == labels).mean()) if labels.size else 0.0
    classes = np.unique(np.concatenate([labels, preds]))
    positives = [1] if set(classes.tolist()) <= {0, 1} else classes.tolist()
    precisions, recalls, f1s = [], [], []
    for c in positives:
        tp = float(((preds == c) & (labels == c)).sum())
        fp = float(((preds == c) & (labels != c)).sum())
        fn = float(((preds != c) & (labels == c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(p)
        recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"accuracy": accuracy, "f1": float(np.mean(f1s)), "precision": float(np.mean(precisions)),
            "recall": float(np.mean(recalls))}


class ProgressPrinter(TrainerCallback):
    """One line per logging step: readable in a terminal and in container logs."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            print(f"saved checkpoint-{state.global_step}", flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        rate = state.global_step / max(time.monotonic() - self.started, 1e-9)
        shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in logs.items()}
        print(f"step {state.global_step}/{state.max_steps} ({rate:.2f} it/s) {json.dumps(shown)}", flush=True)


def distributed_from_sagemaker_hosts() -> None:
    """Several containers (SM_HOSTS) and no launcher: set torch.distributed's environment so the
    Trainer runs data-parallel across them (gloo on CPU). torchrun/SageMaker launchers set it already."""
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]"))
    if len(hosts) < 2 or "WORLD_SIZE" in os.environ:
        return
    rank = hosts.index(os.environ["SM_CURRENT_HOST"])
    os.environ.update({"MASTER_ADDR": hosts[0], "MASTER_PORT": os.environ.get("MASTER_PORT", "29500"),
                       "WORLD_SIZE": str(len(hosts)), "RANK": str(rank), "LOCAL_RANK": "0",
                       "LOCAL_WORLD_SIZE": "1"})
    logger.info("data-parallel over %s: this is rank %d", hosts, rank)


def version_kwargs(args: argparse.Namespace) -> dict:
    """TrainingArguments spelled the way the installed transformers wants them."""
    accepted = inspect.signature(TrainingArguments.__init__).parameters
    kwargs = {}
    strategy_key = "eval_strategy" if "eval_strategy" in accepted else "evaluation_strategy"
    kwargs[strategy_key] = "no"
    if "train_sampling_strategy" in accepted:
        kwargs["train_sampling_strategy"] = "group_by_length" if args.group_by_length else "random"
    else:
        kwargs["group_by_length"] = args.group_by_length
    if "logging_dir" in accepted:  # removed in transformers 5
        kwargs["logging_dir"] = f"{args.output_data_dir}/logs"
    if "use_cpu" in accepted:
        kwargs["use_cpu"] = not torch.cuda.is_available()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        kwargs["ddp_backend"] = "gloo"
    return kwargs


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(sys.stdout)],
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    distributed_from_sagemaker_hosts()

    train_dataset = with_lengths(load_from_disk(args.training_dir))
    test_dataset = load_from_disk(args.test_dir)
    logger.info("loaded train_dataset length is: %d", len(train_dataset))
    logger.info("loaded test_dataset length is: %d", len(test_dataset))

    num_labels = count_labels(train_dataset)
    names = label_names(train_dataset, num_labels)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model_name, num_labels=num_labels, id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(args.model_name)

    checkpoints = args.checkpoint_dir if args.checkpoint_dir and args.save_steps > 0 else None
    resume_from = get_last_checkpoint(checkpoints) if checkpoints and os.path.isdir(checkpoints) else None
    if checkpoints:
        print(f"resuming from {os.path.basename(resume_from) if resume_from else 'nothing'}", flush=True)
    training_args = TrainingArguments(
        output_dir=checkpoints or os.path.join(args.output_data_dir, "checkpoints"),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.train_batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        warmup_steps=args.warmup_steps,
        learning_rate=args.learning_rate,
        logging_steps=args.logging_steps,
        save_strategy="steps" if checkpoints else "no",
        save_steps=args.save_steps or 500,
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        **version_kwargs(args),
    )
    logger.info("training on %s (SM_NUM_GPUS=%s)", training_args.device, args.n_gpus)
    trainer_params = inspect.signature(Trainer.__init__).parameters
    tokenizer_key = "processing_class" if "processing_class" in trainer_params else "tokenizer"
    trainer = Trainer(
        model=model,
        args=training_args,
        compute_metrics=compute_metrics,
        train_dataset=train_dataset,
        eval_dataset=test_dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[ProgressPrinter()],
        **{tokenizer_key: tokenizer},
    )
    trainer.remove_callback(PrinterCallback)  # it prints each log dict again after ProgressPrinter's line

    train_result = trainer.train(resume_from_checkpoint=resume_from)
    eval_result = trainer.evaluate(eval_dataset=test_dataset)

    # writes eval result to file which can be accessed later in s3 output
    os.makedirs(args.output_data_dir, exist_ok=True)
    with open(os.path.join(args.output_data_dir, "eval_results.txt"), "w") as writer:
        print("***** Eval results *****")
        for key, value in sorted(eval_result.items()):
            writer.write(f"{key} = {value}\n")
            print(f"{key} = {value}")
    metrics = {k.removeprefix("eval_"): v for k, v in eval_result.items() if isinstance(v, (int, float))}
    metrics.update({k if k.startswith("train_") else f"train_{k}": v
                    for k, v in train_result.metrics.items() if isinstance(v, (int, float))})
    metrics["world_size"] = training_args.world_size  # processes that trained together (data-parallel)
    with open(os.path.join(args.output_data_dir, "metrics.json"), "w") as writer:
        json.dump(metrics, writer, indent=2)

    # Saves the model and tokenizer to SM_MODEL_DIR; SageMaker uploads it as model.tar.gz.
    trainer.save_model(args.model_dir)
    tokenizer.save_pretrained(args.model_dir)

    # Data-parallel runs: leave together and close the process group, or gloo can abort the
    # interpreter at exit ("terminate called without an active exception").
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
