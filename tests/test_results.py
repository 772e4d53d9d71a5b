"""results.collect on a constructed outputs folder: validation rows become run-level
columns (learned or not), evaluation rows carry in_pretraining, and the analysis keeps a
target run built on an intermediate run that did not learn out of its gains."""
import json
import math

from xfer_nb import analysis, results


def _run(root, stage, run_id, config, upstream=None, metrics=(), done=True, machine=None):
    d = root / "runs" / stage / run_id
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"run_id": run_id, "config": config, "upstream": upstream or {}}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if done:
        from xfer_nb import runs
        runs.mark_done(d, {"machine": machine} if machine else None)   # DONE.json with the manifest reuse verifies


def _eval(run, task, metric, scores):
    return [{"run_id": run, "stage": "target", "task": task, "language": lang, "split": "test", "metric": metric,
             "value": v} for lang, v in scores.items()]


def _validation(run, stage, task, score, learned, threshold):
    """The validation rows a training run writes (xfer_nb.learning.metric_rows)."""
    from xfer_nb import learning
    verdict = {"validation_score": score, "chance": 0.0, "learning_threshold": threshold, "learned": learned}
    return learning.metric_rows(run, stage, task, verdict, 500)


def test_collect_reads_validation_and_pretraining(tmp_path):
    _run(tmp_path, "prepare", "prep-a", {"intermediate_task": "nli", "intermediate_size": 1000, "language_set": "en",
                                         "intermediate_languages": ["en"]})
    per_language = [{"run_id": "inter-a", "stage": "intermediate", "task": "nli", "language": lang,
                     "split": "validation", "metric": "validation_score", "value": v, "n_examples": 250}
                    for lang, v in (("en", 47.2), ("sw", 34.8))]
    _run(tmp_path, "intermediate", "inter-a", {"num_train_epochs": 2.0}, {"prepare": "prep-a"},
         _validation("inter-a", "intermediate", "nli", 41.0, False, 48.3) + per_language)
    target = {"seed": 0, "target_task": "xnli", "model_name_or_path": "embedded:e5-small"}
    scores_base = {"en": 60.0, "sw": 40.0, "yo": 35.0}
    _run(tmp_path, "target", "base-0", target, {},
         _eval("base-0", "xnli", "accuracy", scores_base) + _validation("base-0", "target", "xnli", 61.0, True, 48.3))
    _run(tmp_path, "target", "nli-0", target, {"intermediate": "inter-a"},
         _eval("nli-0", "xnli", "accuracy", {"en": 70.0, "sw": 60.0, "yo": 55.0}))
    _run(tmp_path, "target", "old-0", target, {}, _eval("old-0", "xnli", "accuracy", scores_base), done=False)
    t = results.collect(tmp_path, write=False)
    assert set(t["run_id"]) == {"base-0", "nli-0"}  # an unfinished run is not collected
    assert set(t["split"]) == {"test"}  # validation rows are not evaluation rows
    base = t[t["run_id"] == "base-0"].iloc[0]
    assert base["target_learned"] is True and base["target_validation"] == 61.0
    assert base["intermediate_learned"] is None and base["intermediate_run"] == ""
    nli = t[t["run_id"] == "nli-0"].iloc[0]
    assert nli["intermediate_learned"] is False and nli["intermediate_validation"] == 41.0
    assert nli["target_learned"] is None  # a run without validation rows (e.g. an older run)
    assert nli["intermediate_epochs"] == 2.0 and math.isnan(base["intermediate_epochs"])   # the recipe's passes
    assert dict(zip(t["language"], t["in_pretraining"])) == {"en": True, "sw": True, "yo": False}
    # the analysis counts the intermediate run that did not learn and keeps its target run out
    study = analysis.Study("collected", t, tmp_path)
    nl = study.not_learned()
    assert nl["stage"].tolist() == ["intermediate"] and nl["run"].tolist() == ["inter-a"]
    # a mixed set's run shows which language held it back; the verdict stays the pooled 41.0
    assert nl["by language"].tolist() == ["en 47.2, sw 34.8"] and nl["validation score"].tolist() == [41.0]
    assert not len(study.gains)  # the only gains came from the run built on it
    assert "1 intermediate and 0 target run(s) stayed below their learning threshold" in study.answer()
    assert "no gains were computed" in study.answer()


XEON = {"cpu": "Intel Xeon", "cpu_flags": ["amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"],
        "packages": {"torch": "2.13.0+cpu"}}
EPYC = {"cpu": "AMD EPYC", "cpu_flags": ["avx2"], "packages": {"torch": "2.13.0+cpu"}}


def test_runs_from_different_machines_are_named_and_the_answer_says_so(tmp_path):
    """`precision: auto` is bf16 on one CPU and fp32 on another under one run id: the table
    names each run's machine, and a study whose runs span machines says so in its answer."""
    _run(tmp_path, "prepare", "prep-a", {"intermediate_task": "nli", "intermediate_size": 1000, "language_set": "en",
                                         "intermediate_languages": ["en"]})
    _run(tmp_path, "intermediate", "inter-a", {}, {"prepare": "prep-a"}, machine=XEON)
    target = {"seed": 0, "target_task": "xnli", "model_name_or_path": "embedded:e5-small"}
    _run(tmp_path, "target", "base-0", target, {}, _eval("base-0", "xnli", "accuracy", {"en": 60.0, "sw": 40.0}),
         machine=XEON)
    _run(tmp_path, "target", "nli-0", target, {"intermediate": "inter-a"},
         _eval("nli-0", "xnli", "accuracy", {"en": 70.0, "sw": 50.0}), machine=EPYC)
    t = results.collect(tmp_path, write=False)
    runs_ = t.drop_duplicates("run_id").set_index("run_id")
    xeon = "Intel Xeon [amx_bf16 amx_tile avx512_bf16 avx512f avx2]"
    assert runs_.loc["base-0", "machine"] == xeon and runs_.loc["base-0", "intermediate_machine"] == ""
    assert runs_.loc["nli-0", "machine"] == "AMD EPYC [avx2]" and runs_.loc["nli-0", "intermediate_machine"] == xeon
    study = analysis.Study("collected", t, tmp_path)
    assert study.machines().to_dict("records") == [{"machine": xeon, "runs": 2}, {"machine": "AMD EPYC [avx2]", "runs": 1}]
    assert f"**Runs from 2 kinds of machine** ({xeon}: 2 run(s); AMD EPYC [avx2]: 1 run(s))" in study.answer()
    # one machine, or runs from before the record: nothing to warn about
    one = t.assign(machine=xeon, intermediate_machine=t["intermediate_machine"].where(t["intermediate_machine"] == "", xeon))
    assert len(analysis.Study("one", one, tmp_path).machines()) == 1
    assert "kinds of machine" not in analysis.Study("one", one, tmp_path).answer()


def test_a_run_from_before_the_machine_record_is_labelled_so(tmp_path):
    from xfer_nb import machine
    assert machine.describe(None) == machine.describe({}) == "not recorded"
    assert machine.describe(EPYC) == "AMD EPYC [avx2]"
    assert machine.describe(machine.fingerprint()) != "not recorded"   # this machine's own record


def test_a_gpu_machine_names_its_gpus_as_cuda_visible_devices_selects_them(tmp_path, monkeypatch):
    """A GPU study's runs are labelled by their GPUs, not by the host CPU alone (the driver's
    own /proc files, in its format; no GPU here)."""
    from xfer_nb import machine
    h100 = "NVIDIA H100 80GB HBM3"
    root = tmp_path / "nvidia-gpus"
    for minor, bus in enumerate(["0000:18:00.0", "0000:2a:00.0"]):
        (root / bus).mkdir(parents=True)
        (root / bus / "information").write_text(
            f"Model: \t\t {h100}\nIRQ:   \t\t 0\nGPU UUID: \t GPU-{minor}a1b2\nVideo BIOS: \t ??.??.??.??.??\n"
            f"Bus Type: \t PCIe\nBus Location: \t {bus}\nDevice Minor: \t {minor}\nGPU Excluded:\t No\n")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Intel Xeon\nflags\t\t: avx2 avx512f\n")

    def label(visible):
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        return machine.describe(machine.fingerprint.__wrapped__(str(cpuinfo), str(root)))

    assert label(None) == f"Intel Xeon [avx512f avx2] + 2x {h100}"
    assert label("1") == f"Intel Xeon [avx512f avx2] + 1x {h100}"
    assert label("-1") == label("") == "Intel Xeon [avx512f avx2]"      # CUDA hides every GPU
    assert machine.fingerprint.__wrapped__(str(cpuinfo), str(tmp_path / "no-driver"))["gpus"] == []
    assert machine.visible_gpus(["A", "B"], "1,0") == ["B", "A"]
    assert machine.visible_gpus(["A", "B"], "0,7,1") == ["A"]              # CUDA stops at an invalid index
    assert machine.visible_gpus(["A", "B"], "GPU-8f3e") == ["A"]           # a UUID: its count only
    assert machine.describe({"cpu": "Intel Xeon", "cpu_flags": ["avx2"], "gpus": ["A100", "A100", "T4"]}) == \
        "Intel Xeon [avx2] + 2x A100 + 1x T4"


def test_validation_summary():
    assert results.validation_summary([]) == {"validation": None, "learned": None, "learning_threshold": None}
    s = results.validation_summary(_validation("r", "target", "udpos", 72.5, True, 50.0))
    assert s == {"validation": 72.5, "learned": True, "learning_threshold": 50.0}
    assert not math.isnan(s["validation"])
