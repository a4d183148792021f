"""A random tiny Llama with a locally trained byte-level BPE tokenizer, for tests and smoke runs.

Built in about a second with no hub access, loadable by transformers and vLLM (head_dim 64, which vLLM's CPU
kernels require). Like Llama 2 it has <unk>=0 (also the pad id, as the released code sets), <s>=1, </s>=2, and the
tokenizer prepends <s>.
"""
from __future__ import annotations

from pathlib import Path

from repro.data import templates
from repro.data.tokenizer import load_tokenizer
from repro.io import follow_umask

_CORPUS = [
    templates.PLAIN, templates.JUDGMENT, templates.ANNOTATION_SYSTEM, templates.AI_JUDGE,
    "The primary colors are red, blue, and yellow. The sky is blue on a clear day.",
    "The answer is wrong because the total should be multiplied first. Perfect.",
    "He bought 5 * 4 = 20 pounds of beef. So he paid 20 * 5.5 = $110.",
    "Summarize the passage in one sentence. What is the main point of the story?",
    "A former American football player who played two seasons in the league.",
    "Question: Which of these is a mammal? Answer: The whale is a mammal, not a fish.",
    "def add(a, b):\n    return a + b\n# numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000",
]


def build_tiny_model(out_dir: str | Path, seed: int = 0, vocab_size: int = 512, layers: int = 2,
                     tokenizer=None) -> Path:
    """`tokenizer`: use this one (and its vocabulary) instead of training a small BPE: `tiny-llama2` is the tiny
    model with the real LLaMA-2 tokenizer, so a rehearsal sees the paper's exact tokens and lengths."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = tokenizer or tiny_tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    follow_umask(out)
    return out


def build_tiny_llama2(out_dir: str | Path, store, seed: int = 0) -> Path:

    return build_tiny_model(out_dir, seed=seed, tokenizer=load_tokenizer("llama-2-tokenizer", store))


def tiny_tokenizer(vocab_size: int = 512):
    """The tiny model's byte-level BPE, trained on a few template-like lines (deterministic, about a second)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<unk>")
    tokenizer.model_max_length = 4096
    return tokenizer
