"""A tiny sentence-embedding model built offline, for embeddings endpoints (the TEI contract) in
tests and trials: a 2-layer BERT with random weights, a WordPiece tokenizer trained on a few
sentences, and sentence-transformers' mean pooling (``1_Pooling/config.json``, which TEI reads).
Its vectors have the model's shape and TEI's treatment, not a trained model's meaning."""

from __future__ import annotations

import json
from pathlib import Path

from sagetwin.core.paths import home_folder
from sagetwin.guide.tiny_llm import FORMAT, PREPARED_MARKER, SENTENCES, built_once, readable_by_older_transformers

WIDTH = 32  # the embeddings' dimension


def tiny_embedding_model(target: Path | None = None, *, seed: int = 0) -> Path:
    """The model's folder (``save_pretrained`` layout plus the pooling config), built once into
    ``target`` (default: the models cache under sagetwin's home)."""
    return built_once(target or home_folder("models") / "tiny-embedder", "tiny-embedder",
                      lambda folder: _write(folder, seed))


def _write(folder: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special,
                                                                       show_progress=False))
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(name, wordpiece.token_to_id(name)) for name in ("[CLS]", "[SEP]")])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tokenizer.model_max_length = 128
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=2 * WIDTH, max_position_embeddings=128)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    readable_by_older_transformers(folder, chat_template=None)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": WIDTH, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (folder / PREPARED_MARKER).write_text(json.dumps({"kind": "tiny-embedder", "seed": seed, "format": FORMAT}))
