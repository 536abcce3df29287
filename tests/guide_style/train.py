"""A fine-tuning script in the style of the SageMaker getting-started guide, for sagetwin's tests.

It leans on what the guide's script leans on: SM_* variables read while the arguments are
defined, parse_known_args, load_from_disk on the channels, TrainingArguments(evaluation_strategy=...)
(gone from transformers 4.46 on) and Trainer(tokenizer=...) (gone in 5.x), eval_results.txt in the
output data folder, the model saved to SM_MODEL_DIR.
"""

import argparse
import logging
import os
import sys

import torch
from datasets import load_from_disk
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments


def metrics(prediction):
    truth = prediction.label_ids
    guessed = prediction.predictions.argmax(-1)
    precision, recall, f1, _ = precision_recall_fscore_support(truth, guessed, average="binary", zero_division=0)
    return {"accuracy": accuracy_score(truth, guessed), "f1": f1, "precision": precision, "recall": recall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--warmup_steps", type=int, default=0)
    parser.add_argument("--model_name", type=str)
    parser.add_argument("--learning_rate", type=str, default=5e-5)
    parser.add_argument("--output_data_dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
    parser.add_argument("--model_dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--n_gpus", type=str, default=os.environ["SM_NUM_GPUS"])
    parser.add_argument("--training_dir", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    parser.add_argument("--test_dir", type=str, default=os.environ["SM_CHANNEL_TEST"])
    args, _ = parser.parse_known_args()

    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(sys.stdout)])
    log = logging.getLogger("guide-style")
    train, test = load_from_disk(args.training_dir), load_from_disk(args.test_dir)
    log.info("train %d, test %d examples; device %s", len(train), len(test),
             "cuda" if torch.cuda.is_available() else "cpu")

    model = AutoModelForSequenceClassification.from_pretrained(args.model_name)
    tokenizer = AutoTokenizer.from_pretrained(args.model_name)
    training_args = TrainingArguments(
        output_dir="/tmp/guide-style", num_train_epochs=args.epochs,
        per_device_train_batch_size=args.train_batch_size, per_device_eval_batch_size=args.eval_batch_size,
        warmup_steps=args.warmup_steps, evaluation_strategy="epoch", learning_rate=float(args.learning_rate),
        logging_dir=f"{args.output_data_dir}/logs", report_to=[],
    )
    trainer = Trainer(model=model, args=training_args, compute_metrics=metrics, train_dataset=train,
                      eval_dataset=test, tokenizer=tokenizer)
    trainer.train()
    results = trainer.evaluate(eval_dataset=test)
    with open(os.path.join(args.output_data_dir, "eval_results.txt"), "w") as out:
        for key, value in sorted(results.items()):
            out.write(f"{key} = {value}\n")
    trainer.save_model(args.model_dir)


if __name__ == "__main__":
    main()
