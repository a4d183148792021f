"""Tokenizers without model weights: the paper's exact tokens on a laptop, and the same tokens in training.

A model in a config may name a tokenizer *data source* (`models.<name>.tokenizer`). Preflight, `repro data
tokenize` and training then all use that tokenizer, so what the checks see is what the trainer sees.

`llama-2-tokenizer` is the LLaMA-2 SentencePiece model. The project turns it into a transformers tokenizer
equivalent to the 2023 hub files of meta-llama/Llama-2-13b-chat-hf (the legacy LLaMA fast tokenizer): the text
gets "▁" prepended and every space replaced by "▁", then BPE with byte fallback whose merge order follows the
SentencePiece piece scores; BOS (1) is prepended, EOS (2) never appended, there is no pad token. Its ids equal
SentencePiece's own `encode` with BOS (a test checks every prompt and response of the training sets). It is built
here instead of loaded from hub files because transformers 5 rebuilds a `LlamaTokenizer`'s pipeline with a
Metaspace pre-tokenizer, which changes the ids of any text that starts with a space (measured: " Hello  world"
gives [1, 15043, 29871, 3186] there, [1, 29871, 15043, 29871, 3186] in SentencePiece).

Other tokenizer sources are hub files (tokenizer.json + tokenizer_config.json) loaded with AutoTokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.data import DataStore
from repro.io import check_model_path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPIECE_SPACE = "▁"


@dataclass(frozen=True)
class TokenizerSource:
    kind: str  # 'sentencepiece-llama': built from tokenizer.model; 'hub-files': AutoTokenizer on the files' folder
    files: tuple[str, ...]  # paths in the data source (the canonical layout)


TOKENIZER_SOURCES = {
    "llama-2-tokenizer": TokenizerSource("sentencepiece-llama", ("tokenizers/llama-2/tokenizer.model",)),
    **{f"{name}-tokenizer": TokenizerSource("hub-files", (f"tokenizers/{name}/tokenizer.json",
                                                          f"tokenizers/{name}/tokenizer_config.json"))
       for name in ("mistral-7b-instruct-v0.1", "gemma-7b-it", "llama-3-8b-instruct")},
}


def is_tokenizer_source(name: str) -> bool:
    return name in TOKENIZER_SOURCES


def tokenizer_files(name: str, store) -> list[Path]:
    """Resolve (and, without a mirror, download) the files of a tokenizer source; checksums are verified."""
    return [store.path(name, path) for path in TOKENIZER_SOURCES[name].files]


def sentencepiece_llama_tokenizer(model_file: str | Path):
    """The legacy LLaMA fast tokenizer, built from a SentencePiece model file."""
    import sentencepiece
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    if (sp.unk_id(), sp.bos_id(), sp.eos_id()) != (vocab.get(UNK), vocab.get(BOS), vocab.get(EOS)):
        raise ValueError(f"{model_file}: not a LLaMA SentencePiece model (expected {UNK}, {BOS}, {EOS} as its "
                         "unknown, begin and end pieces)")
    bpe = models.BPE(vocab=vocab, merges=_merges(sp, pieces, vocab), unk_token=UNK, fuse_unk=True,
                     byte_fallback=True)
    backend = Tokenizer(bpe)
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE_SPACE),
                                               normalizers.Replace(" ", SPIECE_SPACE)])
    backend.decoder = decoders.Sequence([decoders.Replace(SPIECE_SPACE, " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                           special_tokens=[(BOS, vocab[BOS])])
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in (UNK, BOS, EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   clean_up_tokenization_spaces=False, model_max_length=int(1e30))


def _merges(sp, pieces: list[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces is a merge; merges rank by the merged piece's score (higher first),
    splits of one piece by their parts' ids, which is how SentencePiece's BPE picks the next merge."""
    ranked = []
    for index, piece in enumerate(pieces):
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        splits.sort(key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
        ranked += [(-sp.get_score(index), order, pair) for order, pair in enumerate(splits)]
    ranked.sort(key=lambda item: item[0])  # stable: equal scores keep piece order, then split order
    return [pair for _, _, pair in ranked]


def build_tokenizer(name: str, store):
    """A registered tokenizer source as a transformers tokenizer."""
    from transformers import AutoTokenizer

    source = TOKENIZER_SOURCES[name]
    files = tokenizer_files(name, store)
    if source.kind == "sentencepiece-llama":
        return sentencepiece_llama_tokenizer(files[0])
    return AutoTokenizer.from_pretrained(files[0].parent)


def load_tokenizer(name_or_path: str, store=None):
    """A tokenizer source name, a model folder (or hub id), or a .gguf file."""
    from transformers import AutoTokenizer

    if is_tokenizer_source(name_or_path):
        if store is None:
            store = DataStore.from_env()
        return build_tokenizer(name_or_path, store)
    check_model_path(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return AutoTokenizer.from_pretrained(name_or_path)
