"""AlpacaEval through the `alpaca_eval` package (paper §5; docs/settings.md): AlpacaEval 1.0 by default, the GPT-4
annotator `alpaca_eval_gpt4`, reference = text-davinci-003 outputs, win rate with ties counted half.

Annotations are cached on disk per annotator (``<cache>/<annotator>.json``), so a rerun or a crash never pays
twice; the cache can be seeded from stored annotations (``cache_seed``). With ``only_cached`` nothing is sent to
a judge: outputs without a cached annotation are left out and counted. The OpenAI key comes from the
environment (OPENAI_API_KEY, read by alpaca_eval's client) and is never written anywhere.
"""
from __future__ import annotations

import json
import os
import shutil
from importlib.metadata import version as package_version
from pathlib import Path

import yaml

from repro.evaluate.winrate import winrate
from repro.io import read_json, read_jsonl, sha256_file, write_json

LOCAL_ANNOTATORS = Path(__file__).parent / "annotators"
PAPER_ANNOTATOR = "alpaca_eval_gpt4"
# the reference outputs of each AlpacaEval version (files of the `alpaca-eval` data source)
REFERENCE_FILES = {"1.0": "alpaca_eval/alpaca_eval.json", "2.0": "alpaca_eval/alpaca_eval_gpt4_baseline.json"}
KEYS = ("instruction", "output_1", "output_2")


def stored_annotations(model: str) -> str:
    """The stored GPT-4 (AlpacaEval 1.0) annotations of a model's outputs, a file of the `alpaca-eval` source."""
    return f"alpaca_eval/results/{model}/alpaca_eval_gpt4/annotations.json"


def _annotator_config(annotator: str) -> tuple[Path, bool]:
    """(config path, is_local). A local judge is a folder under repro/evaluate/annotators or a path to one."""
    local = LOCAL_ANNOTATORS / annotator
    if local.is_dir():
        return local / "configs.yaml", True
    if Path(annotator).is_dir() and (Path(annotator) / "configs.yaml").is_file():
        return Path(annotator) / "configs.yaml", True
    import alpaca_eval.constants as constants

    config = Path(constants.__file__).parent / "evaluators_configs" / annotator / "configs.yaml"
    if not config.is_file():
        raise ValueError(f"unknown annotator '{annotator}': not an alpaca_eval config nor a local judge in "
                         f"{LOCAL_ANNOTATORS}")
    return config, False


def _annotator_class():
    """alpaca_eval's pairwise annotator with one compatibility fix: alpaca_eval 0.6.6 predates pandas 3, which
    reads a cache of whole-number preferences as int64 and then refuses alpaca_eval's own `= 1.5` for ties."""
    from alpaca_eval.annotators import PairwiseAnnotator

    class Pairwise(PairwiseAnnotator):
        def load_(self, path=None):
            super().load_(path)
            frame = getattr(self, "df_annotations", None)
            if frame is not None and self.annotation_key in frame:
                frame[self.annotation_key] = frame[self.annotation_key].astype(float)

    return Pairwise


def _local_annotator_class(decoder):
    """The pairwise annotator with the local decoder callable put in place of a decoder name."""
    from alpaca_eval import utils

    class LocalPairwiseAnnotator(_annotator_class()):
        def _initialize_annotators(self, **kwargs):
            configs = utils.load_configs(self.annotators_config)
            return {name: self.SingleAnnotator(seed=self.seed, base_dir=Path(self.annotators_config).parents[1],
                                               annotation_column=self.annotation_key,
                                               completion_column=self.completion_key,
                                               **{**config, "fn_completions": decoder}, **kwargs)
                    for name, config in configs.items()}

    return LocalPairwiseAnnotator


def _seed_cache(cache_file: Path, seeds: list[str], annotator: str) -> int:
    rows = json.loads(cache_file.read_text()) if cache_file.exists() else []
    have = {tuple(r[k] for k in KEYS) for r in rows}
    added = 0
    for seed in seeds:
        for row in read_json(seed):
            key = tuple(row[k] for k in KEYS)
            # rows without a preference are kept too: alpaca_eval treats them as not annotated
            if row.get("annotator") == annotator and key not in have:
                rows.append(row)
                have.add(key)
                added += 1
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    write_json(cache_file, rows)
    return added


def read_model_outputs(path: str | Path) -> list[dict]:
    """alpaca_eval's model outputs: a non-empty JSON list of objects with a text `instruction` and `output`;
    anything else is an error naming the file and the item."""
    rows = read_json(path)
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty JSON list of {{instruction, output}} objects")
    for i, row in enumerate(rows):
        for field in ("instruction", "output"):
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise ValueError(f"{path}, item {i}, field '{field}': expected text"
                                 + ("" if isinstance(row, dict) else f", got a {type(row).__name__}"))
    return rows


def evaluate_alpaca_eval(model_outputs: str | Path, reference: str | Path, out: str | Path, cache: str | Path,
                         annotator: str = PAPER_ANNOTATOR, version: str = "1.0", length_controlled: bool = False,
                         limit: int | None = None, cache_seed: list[str] | None = None, only_cached: bool = False,
                         judge_model: str | None = None, judge_adapter: str | None = None,
                         judge_backend: str = "transformers", lc_features: str | Path | None = None) -> dict:
    os.environ["IS_ALPACA_EVAL_2"] = str(version == "2.0")  # read by alpaca_eval at import
    import alpaca_eval
    import pandas as pd

    config, is_local = _annotator_config(annotator)
    name, settings = next(iter(yaml.safe_load(config.read_text()).items()))
    outputs = read_model_outputs(model_outputs)
    outputs = outputs[:limit] if limit else outputs
    references = {r["instruction"]: r for r in _rows(reference)}
    missing_reference = [o["instruction"] for o in outputs if o["instruction"] not in references]
    if missing_reference:
        raise ValueError(f"{model_outputs}: {len(missing_reference)} instructions have no reference output, e.g. "
                         f"{missing_reference[0][:80]!r}")
    ref_rows = [references[o["instruction"]] for o in outputs]

    cache_file = Path(cache) / f"{name}.json"
    seeded = _seed_cache(cache_file, cache_seed or [], name)
    left_out = 0
    if only_cached:
        cached = {tuple(r[k] for k in KEYS) for r in json.loads(cache_file.read_text()) if r.get("preference")
                  is not None}
        keep = [i for i, (o, r) in enumerate(zip(outputs, ref_rows))
                if (o["instruction"], r["output"], o["output"]) in cached]
        left_out = len(outputs) - len(keep)
        outputs, ref_rows = [outputs[i] for i in keep], [ref_rows[i] for i in keep]

    kwargs = {"Annotator": _annotator_class()}
    judge = None
    if is_local:
        if not judge_model:
            raise ValueError(f"annotator '{annotator}' is a local judge: give its model (judge_model)")
        from repro.evaluate.local_annotator import LocalAnnotator

        judge = f"{judge_model}" + (f" + {judge_adapter}" if judge_adapter else "")
        kwargs["Annotator"] = _local_annotator_class(LocalAnnotator(judge_model, judge_adapter, judge_backend))
    else:
        judge = settings.get("completions_kwargs", {}).get("model_name")
    metric = "get_length_controlled_winrate" if length_controlled else "get_winrate"
    if length_controlled:
        _offer_lc_features(lc_features, Path(cache))
    leaderboard, annotations = alpaca_eval.evaluate(
        model_outputs=pd.DataFrame(outputs), reference_outputs=pd.DataFrame(ref_rows), annotators_config=str(config),
        precomputed_leaderboard=None, is_return_instead_of_print=True, fn_metric=metric,
        sort_by="length_controlled_winrate" if length_controlled else "win_rate", output_path=None,
        caching_path=str(cache_file), **kwargs)
    annotations = json.loads(pd.DataFrame(annotations).to_json(orient="records"))
    out = Path(out)
    write_json(out.with_name(out.stem + ".annotations.json"), annotations)
    row = leaderboard.iloc[0].to_dict()
    scores = {
        "benchmark": "alpaca_eval", "version": version, **winrate(annotations),
        "alpaca_eval_win_rate": float(row["win_rate"]), "avg_length": int(row["avg_length"]),
        "length_controlled_win_rate": float(row["length_controlled_winrate"]) if length_controlled else None,
        "left_out_uncached": left_out, "annotator": name, "judge_model": judge, "local_judge": is_local,
        "comparable_with_paper": (not is_local) and name == PAPER_ANNOTATOR and version == "1.0",
        "model_outputs": {"path": str(model_outputs), "sha256": sha256_file(model_outputs)},
        "reference": str(reference), "annotation_cache": str(cache_file), "cache_rows_seeded": seeded,
        "alpaca_eval_version": package_version("alpaca-eval"),
    }
    write_json(out, scores)
    return scores


def _offer_lc_features(features: str | Path | None, cache: Path) -> None:
    """alpaca_eval's length-controlled fit downloads its features (df_gamed.csv) from the HF hub itself; give it
    the data store's copy instead (mirror or download cache), laid out as a hub cache, and keep it offline."""
    if features is None:
        raise ValueError("the length-controlled win rate needs alpaca_eval's df_gamed.csv (data source alpaca-eval)")
    import alpaca_eval.constants as constants
    import huggingface_hub.constants as hub

    folder = cache / "hub" / "datasets--tatsu-lab--alpaca_eval"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("local")
    snapshot = folder / "snapshots" / "local" / "df_gamed.csv"
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if not snapshot.is_file():
        shutil.copyfile(features, snapshot)
    constants.DEFAULT_CACHE_DIR, constants.DATASETS_FORCE_DOWNLOAD = str(cache / "hub"), False
    hub.HF_HUB_OFFLINE = True  # served from the copy above, never fetched


def _rows(path) -> list[dict]:
    path = Path(path)
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    return read_json(path)
