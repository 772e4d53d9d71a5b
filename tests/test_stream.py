"""The size axis as one pass over a nested stream (xfer_nb.stream): each size's branch sees
exactly its size-N subset, branches resumed from a shared trunk equal runs that trained
their own trunk, and the grid fills and checks the stream settings. Real data, real steps."""
import numpy as np
import pytest
import torch

from xfer_nb import config as C
from xfer_nb import data, grid, stream
from xfer_nb.featurize import collate, featurize
from xfer_nb.tasks.schema import PAIR
from xfer_nb.train import TrainingArgs, lr_factor, train

from test_train import build_tokenizer, tiny_model, xnli_rows

SIZES = [40, 80, 160]
BS = 8
RATIO = 0.25


def _rows_seen(sampler, steps):
    seen = []
    for _ in range(steps):
        seen.extend(sampler.next().tolist())
    return seen


def test_a_branch_at_size_n_trains_on_exactly_the_first_n_stream_rows():
    lengths = np.random.default_rng(0).integers(5, 60, size=max(SIZES))
    cuts = stream.boundaries(SIZES, BS, RATIO)
    for size in SIZES:
        sampler = stream.StreamSampler(lengths[:size], BS, seed=3, cuts=cuts)
        seen = _rows_seen(sampler, len(sampler))
        assert sorted(seen) == list(range(size))            # every row of the subset, once
        point = stream.branch_point(size, BS, RATIO)
        fresh = stream.StreamSampler(lengths[:size], BS, seed=3, cuts=cuts)
        trunk_rows = _rows_seen(fresh, fresh.steps_before(point))
        assert sorted(trunk_rows) == list(range(point))     # the trunk part: rows [0, b(N))
        # the batches before the branch point are the same whatever the stream's length
        longest = stream.StreamSampler(lengths, BS, seed=3, cuts=cuts)
        assert _rows_seen(longest, longest.steps_before(point)) == trunk_rows


def test_the_branch_point_is_where_a_separate_wsd_run_starts_its_decay():
    for size in (100, 1024, 3600, 14400):
        steps = -(-size // 32)
        point = stream.branch_point(size, 32, 0.2)
        # the decay's first step still has factor 1 (it falls to 0 at the end), as in stream.lr_factor
        decay_start = max(s for s in range(3, steps) if lr_factor("wsd", s, 3, steps, 0.2) == 1.0)
        assert point == decay_start * 32
        assert [stream.lr_factor(s, 3, decay_start, steps) for s in range(steps)] == \
            [lr_factor("wsd", s, 3, steps, 0.2) for s in range(steps)]


def test_the_stream_order_of_the_largest_subset_begins_with_every_smaller_subset(data_dir):
    langs = ["en", "de", "sw"]
    key = lambda ds, rows: sorted((ds[i]["language"], ds[i]["sentence1"], ds[i]["sentence2"]) for i in rows)  # noqa: E731
    largest = data.sample_intermediate("mnli", langs, 301, seed=5, data_dir=data_dir, held_out=30)
    order = stream.interleave_languages(largest["language"])
    for size in (31, 100, 301):
        subset = data.sample_intermediate("mnli", langs, size, seed=5, data_dir=data_dir, held_out=30)
        assert key(largest, order[:size]) == key(subset, range(size))
        # and the size-N run's own stream order is the same prefix, row for row
        own = stream.interleave_languages(subset["language"])
        assert [subset[int(i)]["sentence1"] for i in own] == [largest[int(i)]["sentence1"] for i in order[:size]]


@pytest.fixture(scope="module")
def pairs(data_dir):
    tok = build_tokenizer(data_dir)
    return tok, featurize(xnli_rows(data_dir, max(SIZES)), PAIR, tok, max_seq_length=48, cache_dir=False)


def _branch(pairs, size, store, tmp_path, name):
    tok, feats = pairs
    model = tiny_model(len(tok))
    args = TrainingArgs(learning_rate=1e-3, per_device_train_batch_size=BS, num_train_epochs=1.0, warmup_steps=2,
                        lr_scheduler_type="wsd", decay_ratio=RATIO, seed=0, logging_steps=1,
                        prune_vocabulary=True)   # each size keeps other embedding rows: the trunk state is re-cut
    plan = stream.Stream(sizes=SIZES, store=store, order=np.arange(size))
    result = train(model, {"xnli": feats.select(range(size))}, args, tmp_path / name, collate_fn=collate,
                   pad_token_id=tok.pad_token_id, progress=False, stream=plan)
    return model, result


def test_a_branch_resumed_from_the_shared_trunk_equals_one_that_trained_its_own(pairs, tmp_path):
    shared = tmp_path / "shared"
    _, largest = _branch(pairs, 160, shared, tmp_path, "n160")
    assert largest.examples_seen == 160 and largest.stream["trunk_resumed_from_step"] == 0
    assert largest.vocab_rows_trained > 0
    # a state at each smaller size's branch point; none at the largest's, which no other size needs
    assert len(list(shared.glob("*/trainer_state.json"))) == 2

    resumed, result = _branch(pairs, 80, shared, tmp_path, "n80")
    own, alone = _branch(pairs, 80, tmp_path / "empty", tmp_path, "n80-alone")
    point_step = stream.branch_point(80, BS, RATIO) // BS
    assert result.stream["trunk_resumed_from_step"] == point_step == result.stream["branch_step"]
    assert result.examples_seen == alone.examples_seen == 80
    assert result.vocab_rows_trained < largest.vocab_rows_trained   # the state was re-cut to other rows
    # the resumed branch trained only its decay; the result is the same to the last bit
    assert result.train_seconds - result.resumed_seconds < alone.train_seconds
    for (name, a), (_, b) in zip(resumed.state_dict().items(), own.state_dict().items()):
        assert torch.equal(a, b), name
    lrs = [e["learning_rate"] for e in alone.log_history if "loss" in e]
    assert lrs[point_step] == pytest.approx(1e-3) and lrs[-1] < lrs[point_step] and len(lrs) == 10


def test_a_trunk_state_is_not_reused_for_other_rows(pairs, tmp_path):
    tok, feats = pairs
    shared = tmp_path / "shared"
    _branch(pairs, 80, shared, tmp_path, "a")
    model = tiny_model(len(tok))
    args = TrainingArgs(learning_rate=1e-3, per_device_train_batch_size=BS, num_train_epochs=1.0, warmup_steps=2,
                        lr_scheduler_type="wsd", decay_ratio=RATIO, seed=0)
    reversed_rows = feats.select(range(79, -1, -1))
    result = train(model, {"xnli": reversed_rows}, args, tmp_path / "b", collate_fn=collate,
                   pad_token_id=tok.pad_token_id, progress=False,
                   stream=stream.Stream(sizes=SIZES, store=shared, order=np.arange(80)))
    assert result.stream["trunk_resumed_from_step"] == 0


def test_stream_settings_that_cannot_work_are_refused_by_name():
    with pytest.raises(C.ConfigError, match="lr_scheduler_type='linear'.*needs 'wsd'"):
        C.IntermediateConfig(size_schedule="stream", lr_scheduler_type="linear", num_train_epochs=1.0, warmup_steps=5)
    with pytest.raises(C.ConfigError, match="warmup_steps=0"):
        C.IntermediateConfig(size_schedule="stream", lr_scheduler_type="wsd", num_train_epochs=1.0)
    with pytest.raises(C.ConfigError, match="size_schedule='sometimes'"):
        C.IntermediateConfig(size_schedule="sometimes")
    with pytest.raises(ValueError, match=r"stream_sizes=\[40\] does not include this run's size 80"):
        stream.Stream(sizes=[40], store=None, order=np.arange(80)).check(80)


def test_a_branch_inside_the_warm_up_decays_from_the_rate_the_trunk_had_there():
    factors = [stream.lr_factor(s, 10, 4, 6) for s in range(6)]
    assert factors[:5] == [0.0, 0.1, 0.2, 0.3, 0.4] and factors[5] == pytest.approx(0.2)
    assert stream.lr_factor(3, 10, 8, 12) == stream.lr_factor(3, 10, 4, 6)   # the trunk part is shared


def _plan(tmp_path, **intermediate):
    import yaml
    from xfer_nb.paths import REPO_ROOT
    params = {"extends": str(REPO_ROOT / "params" / "defaults.yaml"), "name": "stream-plan",
              "axes": {"intermediate_task": ["none", "mnli"], "intermediate_size": [256, 1024, 4096],
                       "target_task": ["xnli"], "seed": [0, 1]},
              "exclude": [{"intermediate_size": 4096, "seed": 1}],
              "intermediate": {"size_schedule": "stream", "lr_scheduler_type": "wsd", "num_train_epochs": 1.0,
                               "warmup_steps": 4, **intermediate}}
    path = tmp_path / "stream-plan.yaml"
    path.write_text(yaml.safe_dump(params))
    return grid.expand(grid.load_params(path), check_data=False)


def test_the_grid_gives_each_stream_the_sizes_of_its_task_language_set_and_seed(tmp_path):
    plan = _plan(tmp_path)
    prepare = {spec.run_id: spec.config for spec in plan.stages["prepare"]}
    sizes_by_seed = {}
    for spec in plan.stages["intermediate"]:
        seed = prepare[spec.upstream["prepare"]]["seed"]
        sizes_by_seed.setdefault(seed, set()).add(tuple(spec.config["stream_sizes"]))
    assert sizes_by_seed == {0: {(256, 1024, 4096)}, 1: {(256, 1024)}}
    assert len(plan.stages["intermediate"]) == 5


def test_hand_given_stream_sizes_must_include_the_run_size(tmp_path):
    with pytest.raises(C.ConfigError, match=r"stream_sizes=\[256, 4096\] does not include intermediate_size=1024"):
        _plan(tmp_path, stream_sizes=[256, 4096])
