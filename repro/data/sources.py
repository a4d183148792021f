"""Where every data set the paper uses comes from.

Each file has a relative path in the *canonical layout* (the layout of any local mirror), the URL
it is downloaded from when no mirror is set, and its sha256 where the canonical bytes are stable. A `None` sha256
means the bytes are not pinned (a derived file or a moving branch); the converters still validate the content.
Archives (ARC, MMLU) are downloaded whole and the listed members are extracted into the canonical layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

GH = "https://raw.githubusercontent.com"
HF = "https://huggingface.co/datasets"
SHEPHERD = f"{GH}/facebookresearch/Shepherd/29b1863bbecd"
CUT_REPO = f"{GH}/wwxu21/CUT/bb1d5de6f155"
ALPACA_EVAL_REPO = f"{GH}/tatsu-lab/alpaca_eval/cd543a149df8"
TRUTHFULQA = f"{GH}/sylinrl/TruthfulQA/013686a06be7a7bde5bf8223943e106c7250123c"
CRITIQUES = "https://openaipublic.blob.core.windows.net/critiques/dataset/critiques"
MMLU_TAR = "https://people.eecs.berkeley.edu/~hendrycks/data.tar"
ARC_ZIP = "https://ai2-public-datasets.s3.amazonaws.com/arc/ARC-V1-Feb2018.zip"

MMLU_SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics "
    "high_school_mathematics high_school_microeconomics high_school_physics high_school_psychology "
    "high_school_statistics high_school_us_history high_school_world_history human_aging human_sexuality "
    "international_law jurisprudence logical_fallacies machine_learning management marketing medical_genetics "
    "miscellaneous moral_disputes moral_scenarios nutrition philosophy prehistory professional_accounting "
    "professional_law professional_medicine professional_psychology public_relations security_studies sociology "
    "us_foreign_policy virology world_religions"
).split()

ULTRAFEEDBACK_PARTS = ("evol_instruct", "false_qa", "flan", "sharegpt", "truthful_qa", "ultrachat")


@dataclass(frozen=True)
class DataFile:
    path: str  # relative path in the canonical layout
    url: str | None  # where it is downloaded from; None: only from a mirror or placed by hand
    sha256: str | None = None
    archive: str | None = None  # URL of an archive holding the file ...
    member: str | None = None  # ... under this member name


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    licence: str
    homepage: str
    files: tuple[DataFile, ...] = field(default_factory=tuple)
    note: str = ""


def _gh(base: str, path: str, local: str, sha256: str | None = None) -> DataFile:
    return DataFile(path=local, url=f"{base}/{path}", sha256=sha256)


SOURCES: dict[str, Source] = {}


def _register(source: Source) -> None:
    SOURCES[source.name] = source


_register(Source(
    "shepherd", "Shepherd human critiques (question, answer, feedback) and the raw file with human refinements",
    "CC-BY-NC-4.0", "https://github.com/facebookresearch/Shepherd",
    (
        _gh(SHEPHERD, "data/human_data_for_model.jsonl", "shepherd/human_data_for_model.jsonl",
            "bececda0fab23bf2faf11c9830323a30aa34d4aafbf5067996d34c7e1905ff8a"),
        _gh(SHEPHERD, "data/human_data_raw.jsonl", "shepherd/human_data_raw.jsonl",
            "d3c37ca0aa2cee25c754dc789620cec603e9569cc3acae7626919085cdc98217"),
    ),
))

_ITER_SHA = {
    1: "aa327e51dc78331c743641e147b5d9f4af55636915a6b240575b8884c30af470",
    2: "dc25c5a778bb964926275614651f279d9750df48a944a3b59fc40a85403dc980",
    3: "a23c4ce30b98c8f465ad07efeb709a99f405ef067452f1ed52dff47ea83ce2da",
    4: "28cb86ee20b030be72c5f2a1322eb94b224185b6f8c261a58f0bf20ba22155a1",
    5: "8e81fc7a155a8b03176a30c80fddf94abd5d2ac9edccaba489bda6d60048d817",
}
_register(Source(
    "cut", "The official CUT online-iteration data (GPT-4 judged responses of Llama-2-13b-chat) and templates",
    "Apache-2.0 (responses by Llama-2-13b-chat)", "https://github.com/wwxu21/CUT",
    tuple(
        _gh(CUT_REPO, f"data/iter/train-alpaca-sample-iter{k}.json", f"cut/iter/train-alpaca-sample-iter{k}.json", sha)
        for k, sha in _ITER_SHA.items()
    ) + (
        _gh(CUT_REPO, "templates/alpaca.json", "cut/templates/alpaca.json",
            "78bc7c0b10ade736a4b3516399996ac39475836a7b15f55c068edee28670b96a"),
    ),
))

_register(Source(
    "cut-ultrafeedback", "CUT's GPT-4 re-annotated UltraFeedback sample (data/UltraFeedback/train-alpaca_1000.json)",
    "Apache-2.0", "https://github.com/wwxu21/CUT",
    (DataFile("cut/UltraFeedback/train-alpaca_1000.json", None),),
    note="Referenced by the CUT README but never released: place it in the mirror by hand if you have it.",
))

_register(Source(
    "summarization", "Saunders et al. (2022) self-critiquing summarization critiques",
    "MIT (openai/critiques)", "https://github.com/openai/critiques",
    (
        DataFile("summarization/train.jsonl.gz", f"{CRITIQUES}/train.jsonl.gz"),
        DataFile("summarization/test.jsonl.gz", f"{CRITIQUES}/test.jsonl.gz"),
    ),
    note="Not in the development mirror; the smoke profile uses project-generated records in the same schema.",
))

_register(Source(
    "ultrafeedback", "UltraFeedback (Cui et al. 2023): 4 completions per instruction with GPT-4 ratings and critiques",
    "MIT", "https://huggingface.co/datasets/openbmb/UltraFeedback",
    tuple(
        DataFile(f"ultrafeedback/{part}.jsonl", f"{HF}/openbmb/UltraFeedback/resolve/main/{part}.jsonl")
        for part in ULTRAFEEDBACK_PARTS
    ),
    note="Not in the development mirror; the smoke profile uses project-generated records in the same schema.",
))

_register(Source(
    "stanford-alpaca", "Stanford Alpaca 52K instructions: the pool new online iterations draw from",
    "CC-BY-NC-4.0", "https://github.com/tatsu-lab/stanford_alpaca",
    (DataFile("stanford_alpaca/alpaca_data.json",
              f"{GH}/tatsu-lab/stanford_alpaca/761dc5bfbdeeffa89b8bff5d038781a4055f796a/alpaca_data.json"),),
    note="Not in the development mirror.",
))

LC_FEATURES = "alpaca_eval/df_gamed.csv"
_AE_RESULTS = {
    "llama-2-13b-chat-hf/model_outputs.json": "75ff67385486aef7c93ef5cf57ca29d2fc377b04ae3cb71fe107d7062948647f",
    "llama-2-13b-chat-hf/alpaca_eval_gpt4/annotations.json":
        "581ebec7a146f37f5d0a685e18a04ff67661dea48f504c84848263b476ce8c50",
    "llama-2-7b-chat-hf/model_outputs.json": "5a66ed18b1ecef7a6a728eb32665651853092cbf11d518538d80d86c2df1b5ae",
    "cut-13b/model_outputs.json": "7d620737935a54ddd4a8d3b641812a04372cd99b97d17fbbcdf077859135974d",
    "cut-13b/alpaca_eval_gpt4/annotations.json": "78e8252723186bf5b91901bd5d4b204b289fbff269f266971f654292ed80b332",
}
_register(Source(
    "alpaca-eval", "AlpacaEval: 805 instructions with the 1.0 (text-davinci-003) and 2.0 (GPT-4 turbo) references, "
    "stored model outputs and GPT-4 annotations", "CC-BY-NC-4.0 (data), Apache-2.0 (code)",
    "https://github.com/tatsu-lab/alpaca_eval",
    (
        # The canonical HF files are re-serialised in the development mirror (same content, other bytes): not pinned.
        DataFile("alpaca_eval/alpaca_eval.json", f"{HF}/tatsu-lab/alpaca_eval/resolve/main/alpaca_eval.json"),
        DataFile("alpaca_eval/alpaca_eval_gpt4_baseline.json",
                 f"{HF}/tatsu-lab/alpaca_eval/resolve/main/alpaca_eval_gpt4_baseline.json"),
        # AlpacaEval 2.0 LC: instruction difficulties and the "gamed" baselines its length-controlled fit reads
        DataFile(LC_FEATURES, f"{HF}/tatsu-lab/alpaca_eval/resolve/main/df_gamed.csv"),
    ) + tuple(
        _gh(ALPACA_EVAL_REPO, f"results/{path}", f"alpaca_eval/results/{path}", sha)
        for path, sha in _AE_RESULTS.items()
    ),
))

_register(Source(
    "arc", "AI2 Reasoning Challenge, Challenge set", "CC-BY-SA-4.0", "https://allenai.org/data/arc",
    tuple(
        DataFile(f"arc/ARC-Challenge/ARC-Challenge-{split}.jsonl", None, sha, archive=ARC_ZIP,
                 member=f"ARC-V1-Feb2018-2/ARC-Challenge/ARC-Challenge-{split}.jsonl")
        for split, sha in (
            ("Train", "e02837c53ee86f6d73c259f91c77725c5062ef4531130b7f473a9d9b01118a77"),
            ("Dev", "55224364abd2477f66a9a57c5cbef109fb71d83019aa5e37aec0e7ab757746ca"),
            ("Test", "9fa8ffb3e3a1f88cb302d53dd95aae81e39209ad9bcf974376b319d8fd35717c"),
        )
    ),
))

_register(Source(
    "hellaswag", "HellaSwag validation split", "MIT", "https://github.com/rowanz/hellaswag",
    (DataFile("hellaswag/data/hellaswag_val.jsonl", f"{GH}/rowanz/hellaswag/master/data/hellaswag_val.jsonl"),),
    note="The development mirror's copy is rebuilt from a preprocessed form; the train split, the "
         "paper's 10-shot source, is not in it.",
))

_register(Source(
    "mmlu", "MMLU (Hendrycks et al.), 57 subjects, dev (few-shot) and test", "MIT", "https://github.com/hendrycks/test",
    tuple(
        DataFile(f"mmlu/data/{split}/{subject}_{split}.csv", None, archive=MMLU_TAR,
                 member=f"data/{split}/{subject}_{split}.csv")
        for split in ("dev", "test") for subject in MMLU_SUBJECTS
    ),
))

_register(Source(
    "truthfulqa", "TruthfulQA multiple-choice (mc1/mc2 targets)", "Apache-2.0", "https://github.com/sylinrl/TruthfulQA",
    (_gh(TRUTHFULQA, "data/mc_task.json", "truthfulqa/data/mc_task.json",
         "6eb4125d25750c0145c4be2dce00440736684ab6f74ce6bff2139571cc758954"),),
))

# Tokenizers (repro/data/tokenizer.py builds them): token counts, truncation and collation checked without weights.
# The hub repositories are gated: downloads need HF_TOKEN.
HUB = "https://huggingface.co"
_register(Source(
    "llama-2-tokenizer", "The LLaMA-2 SentencePiece tokenizer (vocab 32000, BOS 1, EOS 2), the same file in every "
    "LLaMA-2 model of the paper", "Llama 2 Community License", f"{HUB}/meta-llama/Llama-2-13b-chat-hf",
    (DataFile("tokenizers/llama-2/tokenizer.model",
              f"{HUB}/meta-llama/Llama-2-13b-chat-hf/resolve/main/tokenizer.model",
              "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"),),
))
for _name, _repo, _licence in (
        ("mistral-7b-instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.1", "Apache-2.0"),
        ("gemma-7b-it", "google/gemma-7b-it", "Gemma Terms of Use"),
        ("llama-3-8b-instruct", "meta-llama/Meta-Llama-3-8B-Instruct", "Meta Llama 3 Community License")):
    _register(Source(
        f"{_name}-tokenizer", f"The tokenizer files of {_repo} (Table 5)", _licence, f"{HUB}/{_repo}",
        tuple(DataFile(f"tokenizers/{_name}/{f}", f"{HUB}/{_repo}/resolve/main/{f}")
              for f in ("tokenizer.json", "tokenizer_config.json")),
        note="Not in the development mirror; fetched from the hub at the commit its lock records (repro.data.fetch).",
    ))
