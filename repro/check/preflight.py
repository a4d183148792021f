"""`repro preflight`: everything that can fail before the first GPU-second, found on a laptop in minutes.

Checks, in order: the config; every data set (present, checksummed, converted); every experiment's instances;
every instance tokenised with the experiment's real tokenizer and cutoff (lengths, truncations, over-long
responses, instances left without a target); the prompt templates; generation, refinement and judge prompts
against the models' context windows; the lm-eval task files; the workflow's DAG; each run's peak GPU memory
against the chosen GPU; and the cost plan. Data that is neither in the mirror nor in the cache is fetched as a run
without a mirror would fetch it (a failed download is a problem); with ``offline`` it is listed as not checked.
Every problem names the experiment, file and record it is about; any problem makes the command exit non-zero.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from repro import calibration
from repro.check.memory import (
    HUB_ARCHS,
    OVERHEAD_GIB,
    VLLM_MEMORY_UTILIZATION,
    arch_from_config,
    generation_gib,
    memory_provenance,
    training_gib,
)
from repro.check.plan import _sources, plan
from repro.config import ConfigError, load_config
from repro.data import DataStore, prepare, templates
from repro.data.experiment import limited, records_from_workflow
from repro.data.fetch import _verify, data_file
from repro.data.fetch import source as registry_source
from repro.data.objectives import PAIR_OBJECTIVES, TRL_OBJECTIVES, build_objective_instances
from repro.data.samples import DATASET_SOURCE, write_schema_samples
from repro.data.templates import plain_prompt, refine_prompt
from repro.data.tokenizer import build_tokenizer, load_tokenizer, tokenizer_files
from repro.errors import DataError
from repro.evaluate.alpaca_eval_run import LOCAL_ANNOTATORS, _annotator_config, stored_annotations
from repro.evaluate.lm_eval_run import TASK_DATA, write_task_files
from repro.io import write_jsonl
from repro.judge.prompts import ai_judge_prompt, annotation_messages, annotation_text
from repro.models.build import smollm2_gguf_path
from repro.models.tiny import tiny_tokenizer

OPENAI_CONTEXT = {"gpt-4": 8192, "gpt-4-0613": 8192, "gpt-4-0314": 8192, "gpt-4-32k": 32768,
                  "gpt-4-turbo": 128000, "gpt-4o": 128000}


class NotAvailableOffline(DataError):
    pass


@dataclass
class Check:
    name: str
    items: int = 0
    problems: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PreflightStore:
    """Mirror, then cache (checksums verified), then the download a run without a mirror makes; offline, a file in
    neither place raises NotAvailableOffline. Remembers every file it resolved."""

    def __init__(self, store, offline: bool):
        self.inner, self.offline = store, offline
        self.downloads = DataStore(cache=store.cache, base_url=store.base_url)
        self.mirror = store.mirror
        self.files: set[Path] = set()

    def path(self, source_name: str, path: str) -> Path:
        entry = data_file(source_name, path)
        if self.mirror is not None and (self.mirror / entry.path).is_file():
            local = self.inner.path(source_name, path)
        elif (self.downloads.cache / entry.path).is_file():
            local = self.downloads.cache / entry.path
            _verify(local, entry.sha256)
        elif self.offline:
            raise NotAvailableOffline(entry.path, None, None, f"data source '{source_name}': not available offline")
        else:
            local = self.downloads.path(source_name, path)
        self.files.add(local)
        return local


class Preflight:
    def __init__(self, config_path: str | Path, gpu: str = "H100", offline: bool = False, store=None,
                 dag: bool = True):
        self.config_path = Path(config_path)
        self.gpu, self.offline, self.run_dag = gpu, offline, dag
        self.base_store = store or DataStore.from_env()
        self.store = PreflightStore(self.base_store, offline)
        self.checks: list[Check] = []
        self.records: dict[str, list[dict]] = {}
        self.instances: dict[str, list[dict]] = {}
        self.tokenizers: dict[str, object] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="repro-preflight-"))

    # -------------------------------------------------------------- running
    def run(self) -> list[Check]:
        check = self._check("config")
        if self.gpu not in calibration.gpus():
            check.problems.append(f"--gpu {self.gpu}: unknown GPU; known: {', '.join(calibration.gpus())}")
            return self.checks
        try:
            self.config = load_config(self.config_path)
        except (ConfigError, OSError) as err:
            check.problems.append(str(err))
            return self.checks
        check.items = 1
        check.notes.append(f"profile '{self.config.profile}', {len(self.config.experiments)} experiments")
        self.dry_run = self._dry_run() if self.run_dag else None  # its data sets feed the data check
        for step in (self.check_data, self.check_instances, self.check_tokenization, self.check_templates,
                     self.check_context, self.check_lm_eval, self.check_dag, self.check_memory, self.check_plan):
            step()
        self._refuse_empty_checks()
        return self.checks

    def _refuse_empty_checks(self) -> None:
        """A check that had things to verify and verified none of them fails: "passed" must mean checked."""
        for check in self.checks:
            if check.name in ("data", "instances", "tokenize") and check.items == 0 and check.not_checked:
                where = "no data mirror was given (REPRO_DATA_MIRROR, --mirror or data.mirror)" if \
                    self.offline and not getattr(self.store, "mirror", None) else "none of it could be had"
                check.problems.append(f"verified nothing of the {len(check.not_checked)} items it had to check: "
                                      f"{where}")

    def _check(self, name: str) -> Check:
        check = Check(name)
        self.checks.append(check)
        return check

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {p}" for c in self.checks for p in c.problems]

    # -------------------------------------------------------------- data
    def datasets(self) -> list[str]:
        """Every data set a run of this config reads: those the config names and those the DAG prepares."""
        c = self.config
        names = [e.dataset for e in c.experiments.values() if not e.loop] + list(c.data.prepare)
        if c.online.loops:
            names += [c.online.pool, *c.online.exclude]
        if any(e.dataset.startswith("summarization") for e in c.experiments.values()):
            names.append("summarization-test")
        names.append("alpaca-eval" if c.evaluation.alpaca_eval.version == "1.0" else "alpaca-eval-2")
        if self.dry_run is not None:
            names += self.dry_run.get("prepared", [])
        return list(dict.fromkeys(names))

    def store_for(self, dataset: str):
        """Project-generated schema samples for the data sets a smoke profile marks as generated."""
        if DATASET_SOURCE.get(dataset) not in self.config.data.generated:
            return self.store
        folder = self.tmp / "generated"
        if not folder.is_dir():
            write_schema_samples(folder)

        return DataStore(mirror=folder)

    def check_data(self) -> None:
        check = self._check("data")
        for name in self.datasets():
            try:
                self.records[name], _ = prepare(name, self.store_for(name))
                check.items += 1
            except NotAvailableOffline as err:
                check.not_checked.append(f"data set {name}: {err}")
            except (DataError, OSError) as err:
                check.problems.append(f"data set {name}: {err}")
        for model, spec in self.config.models.items():
            if spec.tokenizer:
                try:
                    tokenizer_files(spec.tokenizer, self.store)
                    check.items += 1
                except NotAvailableOffline as err:
                    check.not_checked.append(f"tokenizer of {model} ({spec.tokenizer}): {err}")
                except (DataError, OSError) as err:
                    check.problems.append(f"tokenizer of {model} ({spec.tokenizer}): {err}")

        for stored in sorted({s for s in _report_sources(self.config) if s.startswith("stored:")}):
            model = stored.removeprefix("stored:")
            try:
                registry_source("alpaca-eval")
                self.store.path("alpaca-eval", stored_annotations(model))
                check.items += 1
            except NotAvailableOffline as err:
                check.not_checked.append(f"{stored}: {err}")
            except (DataError, OSError) as err:
                check.problems.append(f"{stored}: {err}")
        check.notes.append(f"{len(self.store.files)} files verified")

    # -------------------------------------------------------------- instances and tokens
    def instance_key(self, name: str) -> tuple:
        exp, training = self.config.experiments[name], self.config.experiment_training(name)
        return (exp.dataset, training.objective, training.downsample, training.seed, exp.instructions,
                training.kto.refinements_as_desirable)

    def check_instances(self) -> None:
        check = self._check("instances")
        built: dict[tuple, list[dict]] = {}
        for name, exp in self.config.experiments.items():
            why = records_from_workflow(self.config, name)
            if why:
                check.not_checked.append(f"experiment {name}: trains on {why}, produced by the run")
                continue
            if exp.dataset not in self.records:
                check.not_checked.append(f"experiment {name}: data set {exp.dataset} not available")
                continue
            key = self.instance_key(name)
            training = self.config.experiment_training(name)
            try:
                if key not in built:
                    built[key], _ = build_objective_instances(
                        limited(self.config, exp.dataset, self.records[exp.dataset]), training.objective,
                        downsample=training.downsample, seed=training.seed, source=exp.dataset,
                        instructions=exp.instructions, kto_refinements=training.kto.refinements_as_desirable)
                self.instances[name] = built[key]
                check.items += 1
            except (DataError, ValueError) as err:
                check.problems.append(f"experiment {name}: {err}")
        check.notes.append(f"{sum(len(v) for v in built.values())} instances in {len(built)} distinct sets")

    def tokenizer(self, model: str):
        """The tokenizer a model trains and generates with, or a string saying why it is not available."""
        if model in self.tokenizers:
            return self.tokenizers[model]

        spec = self.config.models[model]
        try:
            if spec.tokenizer:
                result = build_tokenizer(spec.tokenizer, self.store)
            elif spec.source == "tiny":
                result = tiny_tokenizer()
            elif spec.source == "smollm2-gguf":
                result = load_tokenizer(str(smollm2_gguf_path()))
            else:
                result = f"model {model} names no tokenizer source (models.{model}.tokenizer)"
        except NotAvailableOffline as err:
            result = f"tokenizer of {model}: {err}"
        except (DataError, OSError, ValueError) as err:
            result = err
        self.tokenizers[model] = result
        return result

    def usable_tokenizer(self, model: str, check: Check, label: str):
        """The model's tokenizer, or None once `check` records why not: not checked (unavailable here, e.g.
        offline) or a problem (it fails to build)."""
        tokenizer = self.tokenizer(model)
        if isinstance(tokenizer, Exception):
            check.problems.append(f"{label}: {tokenizer}")
        elif isinstance(tokenizer, str):
            check.not_checked.append(f"{label}: {tokenizer}")
        else:
            return tokenizer
        return None

    def check_tokenization(self) -> None:
        from repro.cut.collate import IGNORE, encode_instances

        check = self._check("tokenize")
        done: dict[tuple, object] = {}
        for name, instances in self.instances.items():
            model = self.config.experiments[name].base_model
            training = self.config.experiment_training(name)
            if training.objective in TRL_OBJECTIVES:
                check.not_checked.append(f"experiment {name}: {training.objective} examples are tokenised by TRL")
                continue
            tokenizer = self.usable_tokenizer(model, check, f"experiment {name}")
            if tokenizer is None:
                continue
            key = (model, self.instance_key(name), training.cutoff_len, training.long_responses)
            if key not in done:
                try:
                    done[key] = encode_instances(tokenizer, instances, training.cutoff_len, f"experiment {name}",
                                                 training.long_responses)
                except ValueError as err:
                    done[key] = err
            encoded = done[key]
            if isinstance(encoded, ValueError):
                check.problems.append(str(encoded))
                continue
            check.items += 1
            dataset = self.config.experiments[name].dataset
            for position in encoded.dropped:
                check.problems.append(
                    f"experiment {name}: data set {dataset}, instance {position} (source_index "
                    f"{instances[position]['source_index']}): the response alone fills cutoff_len "
                    f"{training.cutoff_len} and long_responses is 'drop', so it would be left out")
            empty = [e.source_index for e in encoded.examples
                     if all(label == IGNORE for s in e.sequences for label in s.labels()[1:])]
            for source_index in empty:
                check.problems.append(f"experiment {name}: data set {dataset}, source_index {source_index}: no "
                                      "token left to train on")
            stats = encoded.stats()
            if stats["overlong_kept_truncated"] or stats["prompt_truncated"]:
                check.notes.append(f"{name}: {stats['overlong_kept_truncated']} over-long kept truncated, "
                                   f"{stats['prompt_truncated']} prompts truncated, longest {stats['max_tokens']}")
        longest = max((e.stats()["max_tokens"] for e in done.values() if not isinstance(e, Exception)), default=0)
        check.notes.insert(0, f"{len(done)} distinct tokenisations, longest sequence {longest} tokens")

    def check_templates(self) -> None:
        check = self._check("templates")
        sample = {"instruction": "INSTRUCTION-X", "input": "INPUT-Y", "response": "RESPONSE-Z",
                  "judgment": "JUDGMENT-W"}
        rendered = {
            "plain (Figures 5, 6)": (templates.plain_prompt(sample["instruction"], sample["input"]), 2),
            "judgment (Figure 5)": (templates.judgment_prompt(sample["instruction"], sample["judgment"],
                                                              sample["input"]), 3),
            "refinement (ILF)": (templates.refine_prompt(sample["instruction"], sample["input"], sample["response"],
                                                         sample["judgment"]), 4),
            "AI judge (Figure 9)": (ai_judge_prompt(sample["instruction"], sample["input"], sample["response"]), 3),
            "annotation (Figure 8)": (annotation_text(annotation_messages(sample["instruction"], sample["input"],
                                                                          sample["response"])), 3),
        }
        for folder in sorted(p for p in LOCAL_ANNOTATORS.iterdir() if (p / "prompt.txt").is_file()):
            text = (folder / "prompt.txt").read_text()
            rendered[f"local judge {folder.name}"] = (
                text.format(instruction=sample["instruction"], output_1=sample["response"], output_2="OUTPUT-V"), 3)
        for name, (text, expected) in rendered.items():
            found = sum(v in text for v in sample.values()) + ("OUTPUT-V" in text)
            if found < expected or re.search(r"\{[a-z_0-9]*\}", text):
                check.problems.append(f"template {name}: renders with {found} of {expected} fields or leaves a "
                                      "placeholder")
            check.items += 1
        try:
            released = json.loads(self.store.path("cut", "cut/templates/alpaca.json").read_text())
            for key, ours in (("prompt_no_input", templates.PLAIN), ("prompt_no_input_judge", templates.JUDGMENT)):
                if released[key] != ours:
                    check.problems.append(f"template {key}: differs from the released templates/alpaca.json")
        except NotAvailableOffline as err:
            check.not_checked.append(f"released templates: {err}")
        except (DataError, OSError, KeyError) as err:
            check.problems.append(f"released templates: {err}")

    # -------------------------------------------------------------- context windows
    def check_context(self) -> None:
        check = self._check("context")
        c = self.config
        new_tokens = c.generation.max_new_tokens

        def fits(model: str, what: str, dataset: str, texts: list[str], extra: int, budget: int | None = None,
                 counted_with: str | None = None) -> None:
            budget = budget or c.models[model].context
            if budget is None:
                check.not_checked.append(f"{what} with {model}: models.{model}.context is not set")
                return
            tokenizer = self.usable_tokenizer(counted_with or model, check, f"{what} with {model}")
            if tokenizer is None:
                return
            lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]] if texts else []
            worst = max(range(len(lengths)), key=lengths.__getitem__) if lengths else None
            check.items += 1
            if worst is None:
                return
            over = [i for i, n in enumerate(lengths) if n + extra > budget]
            longest = lengths[worst]
            note = f"{what} with {model}: longest prompt {longest} + {extra} = {longest + extra} of {budget}"
            if over:
                check.problems.append(f"{note} tokens: {len(over)} item(s) of {dataset} do not fit, e.g. record "
                                      f"{over[0]}")
            else:
                check.notes.append(note)

        reference = "alpaca-eval" if c.evaluation.alpaca_eval.version == "1.0" else "alpaca-eval-2"
        eval_rows = self.records.get(reference)
        generating = sorted({e.base_model for e in c.experiments.values()} | set(c.models))
        for model in generating:
            if eval_rows is None:
                check.not_checked.append(f"AlpacaEval prompts with {model}: data set {reference} not available")
            else:
                fits(model, "AlpacaEval generation", reference,
                     [plain_prompt(r["instruction"], r.get("input")) for r in eval_rows], new_tokens)
        if any(e.dataset.startswith("summarization") for e in c.experiments.values()):
            rows = self.records.get("summarization-test")
            for model in sorted({e.base_model for e in c.experiments.values() if e.dataset.startswith("summ")}):
                if rows is None:
                    check.not_checked.append(f"summarization prompts with {model}: data set not available")
                else:
                    fits(model, "summarization generation", "summarization-test",
                         [plain_prompt(r["instruction"], r.get("input")) for r in rows], new_tokens)
        for name, exp in c.experiments.items():
            if c.experiment_training(name).needs_model_refinements:
                rows = [r for r in self.records.get(exp.dataset, []) if r.get("judgment") is not None]
                if exp.dataset not in self.records:
                    check.not_checked.append(f"refinement prompts of {name}: data set {exp.dataset} not available")
                    continue
                fits(exp.base_model, f"refinement prompts of {name}", exp.dataset,
                     [refine_prompt(r["instruction"], r.get("input"), r["output"], r["judgment"]) for r in rows],
                     new_tokens)
        for loop_name, loop in c.online.loops.items():
            pool = self.records.get(c.online.pool)
            judge = c.judges[loop.judge]
            if pool is None:
                check.not_checked.append(f"loop {loop_name}: pool {c.online.pool} not available")
                continue
            fits(c.online.base_model, f"loop {loop_name} generation", c.online.pool,
                 [plain_prompt(r["instruction"], r.get("input")) for r in pool], new_tokens)
            empty = ""  # the judged answer is at most max_new_tokens long: counted in `extra`
            if judge.kind == "openai":
                budget = OPENAI_CONTEXT.get(judge.model)
                if budget is None:
                    check.not_checked.append(f"loop {loop_name}: context of judge model {judge.model} unknown")
                    continue
                texts = [annotation_text(annotation_messages(r["instruction"], r.get("input"), empty)) for r in pool]
                fits(c.online.base_model, f"loop {loop_name} judge {loop.judge} (estimated with the "
                     f"{c.online.base_model} tokenizer)", c.online.pool, texts, new_tokens + judge.max_tokens,
                     budget=budget)
            else:
                texts = ([ai_judge_prompt(r["instruction"], r.get("input"), empty) for r in pool]
                         if judge.kind == "ai_judge" else
                         [annotation_text(annotation_messages(r["instruction"], r.get("input"), empty)) for r in pool])
                fits(judge.model, f"loop {loop_name} judge {loop.judge}", c.online.pool, texts,
                     new_tokens + judge.max_tokens)
        self._annotator_context(fits, eval_rows, reference, new_tokens)

    def _annotator_context(self, fits, eval_rows, reference: str, new_tokens: int) -> None:
        """AlpacaEval's judge reads the instruction, the reference and an answer of up to max_new_tokens."""
        import yaml

        c = self.config
        settings = c.evaluation.alpaca_eval
        if eval_rows is None:
            return
        config_file, local = _annotator_config(settings.annotator)
        name, spec = next(iter(yaml.safe_load(config_file.read_text()).items()))
        template = Path(spec["prompt_template"])
        template = template if template.is_absolute() else config_file.parents[1] / template
        text = template.read_text()
        prompts = [text.replace("{instruction}", r["instruction"]).replace("{output_1}", r["output"])
                   .replace("{output_2}", "") for r in eval_rows]
        max_tokens = spec.get("completions_kwargs", {}).get("max_tokens", 0)
        if local:
            fits(settings.judge_model, f"AlpacaEval judge {name}", reference, prompts, new_tokens + max_tokens)
            return
        judge = spec.get("completions_kwargs", {}).get("model_name")
        counted = c.online.base_model if c.online.base_model in c.models else next(iter(c.models), None)
        if judge in OPENAI_CONTEXT and counted is None:
            fits_note = f"AlpacaEval judge {name}: no model in the config to count tokens with"
            self.checks[-1].not_checked.append(fits_note)
        elif judge in OPENAI_CONTEXT:
            fits(counted, f"AlpacaEval judge {name} ({judge}, estimated with the {counted} tokenizer)", reference,
                 prompts, new_tokens + max_tokens, budget=OPENAI_CONTEXT[judge])

    # -------------------------------------------------------------- lm-eval, DAG
    def check_lm_eval(self) -> None:
        check = self._check("lm-eval")
        tasks = self.config.evaluation.lm_eval.tasks
        if not tasks:
            check.notes.append("no lm-eval tasks configured")
            return
        data = {}
        for task in tasks:
            for name in TASK_DATA.get(task, ()):
                if name not in self.records:
                    check.not_checked.append(f"task {task}: data set {name} not prepared")
                    return
                data[name] = self.tmp / "eval" / f"{name}.jsonl"
                write_jsonl(data[name], self.records[name])
        try:
            import datasets
            from lm_eval.tasks import TaskManager, get_task_dict

            datasets.disable_progress_bars()

            names = write_task_files(self.tmp / "lm_eval_tasks", data, {t: s.num_fewshot for t, s in tasks.items()})
            built = get_task_dict(names, TaskManager(include_path=str(self.tmp / "lm_eval_tasks"),
                                                     include_defaults=False))
            check.items = len(names)
            check.notes.append(f"{len(built)} task(s) or group(s) built: {', '.join(names)}")
        except Exception as err:  # lm-eval raises many kinds; any is a task file that does not build
            check.problems.append(f"lm-eval task files: {type(err).__name__}: {err}")

    def _dry_run(self) -> dict:
        """`snakemake -n` of the config in an empty folder: the jobs the whole workflow would run."""
        snakefile = Path(__file__).resolve().parents[2] / "Snakefile"
        if not snakefile.is_file():
            return {"skipped": f"no Snakefile at {snakefile} (an installed package without the workflow)"}
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--snakefile", str(snakefile),
                                 "--configfile", str(self.config_path.resolve()), "--directory", str(self.tmp / "dag")],
                                capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if result.returncode != 0:
            tail = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()][-6:]
            return {"error": "snakemake -n: " + " | ".join(tail)}
        jobs, prepared, rule = 0, [], None
        for line in result.stdout.splitlines():
            if line.startswith("rule ") or line.startswith("localrule "):
                rule, jobs = line.split()[1].rstrip(":"), jobs + 1
            elif rule == "prepare_data" and line.strip().startswith("wildcards: name="):
                prepared.append(line.strip().removeprefix("wildcards: name="))
        return {"jobs": jobs, "prepared": prepared}

    def check_dag(self) -> None:
        check = self._check("dag")
        result = self.dry_run
        if result is None:
            check.not_checked.append("DAG: skipped on request")
        elif "skipped" in result:
            check.not_checked.append(f"DAG: {result['skipped']}")
        elif "error" in result:
            check.problems.append(result["error"])
        else:
            check.items = result["jobs"]
            check.notes.append(f"snakemake -n resolves {result['jobs']} jobs; they prepare "
                               f"{len(result['prepared'])} data sets (all in the data check)")

    # -------------------------------------------------------------- memory, plan
    def arch(self, model: str):
        spec = self.config.models[model]
        if spec.source == "hub":
            return HUB_ARCHS.get(spec.path) or (arch_from_config(Path(spec.path) / "config.json")
                                                if Path(spec.path, "config.json").is_file() else None)
        return None  # built locally at CPU scale: a few MB

    def check_memory(self) -> None:
        check = self._check("memory")
        c = self.config
        if c.device == "cpu":
            check.notes.append("device: cpu, no GPU memory to check")
            return
        capacity = calibration.load(self.gpu).memory_gib
        worst, worst_name = 0.0, None
        for name, exp in c.experiments.items():
            arch = self.arch(exp.base_model)
            if arch is None:
                check.not_checked.append(f"experiment {name}: no architecture known for {exp.base_model}")
                continue
            training = c.experiment_training(name)
            sequences = 2 * training.micro_batch_size  # Align-N + Misalign, or chosen + rejected
            tokens = training.cutoff_len + 1
            try:
                parts = training_gib(arch, training, tokens, sequences if training.objective != "ai_judge"
                                     else training.micro_batch_size)
            except ValueError as err:
                check.problems.append(f"experiment {name}: {err}")
                continue
            check.items += 1
            need = parts["total"] + OVERHEAD_GIB
            if need > worst:
                worst, worst_name = need, name
            if need > capacity:
                detail = ", ".join(f"{k} {v:.1f}" for k, v in parts.items() if k != "total")
                check.problems.append(f"experiment {name} ({training.objective}"
                                      f"{', DPO' if training.objective in PAIR_OBJECTIVES else ''}): training needs "
                                      f"~{need:.1f} GiB per GPU ({detail}, overhead {OVERHEAD_GIB}) > {capacity} GiB "
                                      f"on {self.gpu}")
        for model, spec in c.models.items():
            arch = self.arch(model)
            if arch is None or spec.context is None:
                continue
            parts = generation_gib(arch, spec.context, spec.tensor_parallel)
            check.items += 1
            if parts["total"] > capacity * VLLM_MEMORY_UTILIZATION:
                check.problems.append(f"model {model}: a vLLM engine on {spec.tensor_parallel} GPU(s) needs "
                                      f"~{parts['total']:.1f} GiB per GPU (weights {parts['weights']:.1f}) > "
                                      f"{VLLM_MEMORY_UTILIZATION:.0%} of {capacity} GiB: raise "
                                      f"models.{model}.tensor_parallel")
            else:
                check.notes.append(f"{model}: generation ~{parts['total']:.1f} GiB per GPU on "
                                   f"{spec.tensor_parallel} GPU(s)")
        if worst_name:
            check.notes.insert(0, f"largest training run {worst_name} ~{worst:.1f} of {capacity} GiB ({self.gpu}; "
                                  f"{memory_provenance(c.experiment_training(worst_name))})")

    def check_plan(self) -> None:
        check = self._check("plan")
        try:
            result = plan(self.config, self.gpu, self.store)
        except (ValueError, DataError) as err:
            check.problems.append(str(err))
            return
        check.items = result["runs"]
        basis = "measured figures" if result["total"]["measured"] else "partly extrapolated figures"
        check.notes.append(f"{result['total']['gpu_hours']:,.1f} {self.gpu} GPU-hours on {basis}, judge API "
                           f"${result['total']['judge_usd']:,.2f} (repro plan for the breakdown)")


def _report_sources(config) -> set[str]:

    return {s for mapping in config.report.values() for s in _sources(mapping)}


def format_report(checks: list[Check]) -> str:
    lines = ["| check | items | problems | not checked | notes |", "|---|---|---|---|---|"]
    for c in checks:
        notes = "; ".join(c.notes[:3]) + (f" (+{len(c.notes) - 3} more)" if len(c.notes) > 3 else "")
        lines.append(f"| {c.name} | {c.items} | {len(c.problems)} | {len(c.not_checked)} | {notes} |")
    problems = [f"- {c.name}: {p}" for c in checks for p in c.problems]
    skipped = [f"- {c.name}: {n}" for c in checks for n in c.not_checked]
    measured = [f"- {c.name}: {n}" for c in checks for n in c.notes]
    if problems:
        lines += ["", f"Problems ({len(problems)}):", *problems]
    if skipped:
        lines += ["", f"Not checked ({len(skipped)}):", *skipped]
    lines += ["", "Measured:", *measured]
    lines += ["", "PREFLIGHT FAILED" if problems else "preflight passed"]
    return "\n".join(lines) + "\n"
