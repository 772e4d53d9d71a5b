"""Nested fixed-size subsets spread evenly over languages, on the real data."""
from collections import Counter

import pytest

from xfer_nb.data import even_split, intermediate_pool_size, nested_subset, sample_intermediate


def _items(ds):
    return list(zip(ds["language"], ds["id"]))


def test_nested_subset_is_a_prefix_and_deterministic():
    small, large = nested_subset(1000, 100, seed=3), nested_subset(1000, 400, seed=3)
    assert large[:100] == small
    assert len(set(large)) == 400 and all(0 <= i < 1000 for i in large)
    assert nested_subset(1000, 100, seed=3) == small
    assert nested_subset(1000, 100, seed=4) != small
    assert sorted(nested_subset(7, 7, seed=0)) == list(range(7))


def test_nested_subset_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"size=11 is larger than the pool of task='xnli': pool_size=10"):
        nested_subset(10, 11, seed=0, task="xnli")
    with pytest.raises(ValueError, match=r"size=-1"):
        nested_subset(10, -1, seed=0)
    with pytest.raises(ValueError, match=r"seed=1.5"):
        nested_subset(10, 1, seed=1.5)


def test_even_split_gives_the_remainder_to_the_first_languages():
    assert even_split(10, 3) == [4, 3, 3]
    assert even_split(11, 3) == [4, 4, 3]
    assert even_split(2, 3) == [1, 1, 0]
    assert sum(even_split(997, 7)) == 997


def test_parallel_task_spreads_evenly_with_disjoint_items_and_nests(data_dir):
    langs = ["en", "sw", "ur"]
    small = sample_intermediate("xnli", langs, 100, seed=1, data_dir=data_dir)
    large = sample_intermediate("xnli", langs, 400, seed=1, data_dir=data_dir)
    assert Counter(small["language"]) == {"en": 34, "sw": 33, "ur": 33}
    assert Counter(large["language"]) == {"en": 134, "sw": 133, "ur": 133}
    assert set(_items(small)) <= set(_items(large))
    ids = {lang: {i for l, i in _items(large) if l == lang} for lang in langs}
    assert not (ids["en"] & ids["sw"] or ids["en"] & ids["ur"] or ids["sw"] & ids["ur"])  # different source items
    assert _items(sample_intermediate("xnli", langs, 100, seed=1, data_dir=data_dir)) == _items(small)
    assert _items(sample_intermediate("xnli", langs, 100, seed=2, data_dir=data_dir)) != _items(small)
    # rows are the real rows of each language: an sw row carries the sw text of that item
    row = large.filter(lambda r: r["language"] == "sw")[0]
    from xfer_nb.tasks import load
    sw = load("xnli", "sw", "dev", data_dir=data_dir)
    assert sw[int(row["id"].split("-")[1])]["sentence1"] == row["sentence1"]


def test_more_languages_cover_more_source_items(data_dir):
    one = sample_intermediate("xquad", ["en"], 600, seed=0, data_dir=data_dir)
    four = sample_intermediate("xquad", ["en", "hi", "th", "tr"], 600, seed=0, data_dir=data_dir)
    assert len(set(one["id"])) == len(set(four["id"])) == 600
    assert Counter(four["language"]) == {"en": 150, "hi": 150, "th": 150, "tr": 150}
    assert intermediate_pool_size("xquad", ["en", "hi", "th", "tr"], data_dir=data_dir) == 1190
    with pytest.raises(ValueError, match=r"size=1191 is larger than the pool of task='xquad'.*at most 1190"):
        sample_intermediate("xquad", ["en", "hi"], 1191, seed=0, data_dir=data_dir)


def test_uneven_parallel_pools_limit_the_even_split(data_dir):
    langs = ["oto", "aym"]  # AmericasNLI dev: oto has 222 items, aym 743
    pool = intermediate_pool_size("americasnli", langs, data_dir=data_dir)
    assert 0 < pool <= 2 * 222
    full = sample_intermediate("americasnli", langs, pool, seed=0, data_dir=data_dir)
    assert len(full) == pool and not set(full.filter(lambda r: r["language"] == "oto")["id"]) & set(
        full.filter(lambda r: r["language"] == "aym")["id"])
    with pytest.raises(ValueError, match=r"items per language: oto=\d+, aym=\d+"):
        sample_intermediate("americasnli", langs, pool + 1, seed=0, data_dir=data_dir)


def test_non_parallel_task_samples_each_language_pool(data_dir):
    langs = ["sw", "yo", "jv"]  # PAN-X dev: 1,000 / 100 / 100 sentences
    # 301 = [101, 100, 100]: the extra example goes to sw, the first language, which has room
    assert intermediate_pool_size("panx", langs, data_dir=data_dir, split="dev") == 301
    small = sample_intermediate("panx", langs, 31, seed=5, data_dir=data_dir, split="dev")
    large = sample_intermediate("panx", langs, 300, seed=5, data_dir=data_dir, split="dev")
    assert Counter(small["language"]) == {"sw": 11, "yo": 10, "jv": 10}
    assert set(_items(small)) <= set(_items(large)) and len(set(_items(large))) == 300
    assert len(sample_intermediate("panx", langs, 301, seed=5, data_dir=data_dir, split="dev")) == 301
    with pytest.raises(ValueError, match=r"size=302 .*at most 301 .*sw=1000, yo=100, jv=100"):
        sample_intermediate("panx", langs, 302, seed=5, data_dir=data_dir, split="dev")


def test_sample_input_errors(data_dir):
    assert len(sample_intermediate("siqa", ["en"], 0, seed=0, data_dir=data_dir)) == 0
    with pytest.raises(ValueError, match=r"languages='en' must be a non-empty list"):
        sample_intermediate("xnli", "en", 10, seed=0, data_dir=data_dir)
    with pytest.raises(ValueError, match=r"repeats en"):
        sample_intermediate("xnli", ["en", "en"], 10, seed=0, data_dir=data_dir)
    with pytest.raises(ValueError, match=r"task='tatoeba' has no intermediate-training split"):
        sample_intermediate("tatoeba", ["de"], 10, seed=0, data_dir=data_dir)
    with pytest.raises(ValueError, match=r"language='yo' is not available for task='xnli'"):
        sample_intermediate("xnli", ["en", "yo"], 10, seed=0, data_dir=data_dir)


def test_xnli_pool_and_evaluation_share_no_premise(data_dir):
    """Local XNLI dev is both the intermediate pool and the evaluation split: premises
    alternate between them, so nothing evaluated (or its translation) is trained on."""
    from xfer_nb import tasks
    dev = tasks.load("xnli", "sw", "dev", data_dir=data_dir)
    pool = tasks.partition("xnli", "dev", "local", dev, "pool")
    evaluated = tasks.partition("xnli", "dev", "local", dev, "eval")
    assert len(dev) == 2490 and len(pool) == len(evaluated) == 1245
    assert not set(pool["sentence1"]) & set(evaluated["sentence1"])
    assert intermediate_pool_size("xnli", ["en"], data_dir=data_dir) == 1245
    drawn = sample_intermediate("xnli", ["en", "sw", "ur"], 3 * 1245 // 3, seed=0, data_dir=data_dir)
    eval_ids = set(tasks.partition("xnli", "dev", "local", tasks.load("xnli", "en", "dev", data_dir=data_dir),
                                   "eval")["id"])
    assert eval_ids and not set(drawn["id"]) & eval_ids
    # other splits and tasks are untouched
    assert len(tasks.partition("pawsx", "dev", "local", tasks.load("pawsx", "en", "dev", data_dir=data_dir),
                               "eval")) == 2000


def test_mnli_draws_different_source_items_per_language_and_nests(data_dir):
    """The xnli-extension pool: 15,001 MultiNLI pairs line-aligned in 23 languages; each
    language of a set gets its own items, so a bigger language set adds new content."""
    from xfer_nb.tasks import load
    small = sample_intermediate("mnli", ["en", "sw"], 1000, seed=0, data_dir=data_dir)
    large = sample_intermediate("mnli", ["en", "sw"], 4000, seed=0, data_dir=data_dir)
    assert Counter(large["language"]) == {"en": 2000, "sw": 2000}
    assert set(_items(small)) <= set(_items(large))
    en_ids = {i for l, i in _items(large) if l == "en"}
    sw_ids = {i for l, i in _items(large) if l == "sw"}
    assert len(en_ids) == len(sw_ids) == 2000 and not en_ids & sw_ids
    sw = load("mnli", "sw", "train", data_dir=data_dir)
    row = large.filter(lambda r: r["language"] == "sw")[0]
    assert sw[int(row["id"].split("-")[1])]["sentence1"] == row["sentence1"]
    every = ["ar", "az", "cs", "da", "de", "en", "es", "et", "fi", "fr", "hu", "lt", "lv", "nl", "no", "pl", "sv",
             "sw", "tr", "ur", "uz", "vi", "zh"]
    assert intermediate_pool_size("mnli", ["en"], data_dir=data_dir) == 15_001
    assert intermediate_pool_size("mnli", every, data_dir=data_dir) == 15_001   # every item once, in some language


def test_squad_and_siqa_pools_are_their_train_files(data_dir):
    assert intermediate_pool_size("squad", ["en"], data_dir=data_dir) == 87_599
    squad = sample_intermediate("squad", ["en"], 300, seed=1, data_dir=data_dir)
    assert len(set(squad["id"])) == 300 and squad["id"][:100] == sample_intermediate(
        "squad", ["en"], 100, seed=1, data_dir=data_dir)["id"]
    assert intermediate_pool_size("siqa", ["en"], data_dir=data_dir) == 33_410
    siqa = sample_intermediate("siqa", ["en"], 1000, seed=0, data_dir=data_dir)
    assert len(siqa) == 1000 and set(siqa["label"]) == {0, 1, 2}
