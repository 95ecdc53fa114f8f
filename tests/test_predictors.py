"""Predictor registry, prompt metrics, ensembles and baselines over a tiny tuned pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from taskscout import api
from taskscout.backbone import resolve_backbone
from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.embeddings.task_embedding import embedding_of_run
from taskscout.predictors import PREDICTORS, Pool, Predictor, Reads, get_predictor
from taskscout.predictors import prompt_metrics as pm
from taskscout.predictors.baselines import (
    fisher_task_embedding,
    load_tuned_model,
    logme,
    loss_curve_slopes,
    text_embedding,
)
from taskscout.store import RunStore

TASKS = {"sms_spam": 40, "mnli": 32, "snli": 24}  # demo tasks and their training sizes
METHODS = ("lora", "bitfit", "prompt")
QUIET = {"progress": False, "threads": 1, "epochs": 2, "early_epochs": 1, "batch_size": 8}
PROMPT = {"prompt_length": 4, "encoder_hidden": 16}


@pytest.fixture(scope="module")
def pool(tmp_path_factory, tiny_backbone, tiny_backbone_h48) -> Pool:
    """lora, bitfit and prompt runs of three demo tasks on the tiny backbone, plus a lora run of
    qnli on the other (hidden 48) backbone only."""
    root = tmp_path_factory.mktemp("predictors") / "store"
    db = RunStore(root)
    for task, n in TASKS.items():
        for method in METHODS:
            api.tune(
                task,
                method=method,
                store=db,
                backbone=str(tiny_backbone),
                max_train=n,
                max_dev=8,
                method_options=PROMPT if method == "prompt" else None,
                **QUIET,
            )
    api.tune("qnli", store=db, backbone=str(tiny_backbone_h48), max_train=16, max_dev=8, **QUIET)
    return Pool.open(db, str(tiny_backbone))


SOURCES = ["mnli", "snli"]


# --- prompt metrics (pure) --------------------------------------------------------------------


def _numpy_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    ma, mb = a.mean(0), b.mean(0)
    cos = lambda x, y: float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))  # noqa: E731
    return {
        "mean-manhattan": -float(np.abs(ma - mb).sum()),
        "mean-euclidean": -float(np.sqrt(((ma - mb) ** 2).sum())),
        "mean-cosine": cos(ma, mb),
        "token-manhattan": -float(np.mean([np.abs(a[i] - b[i]).sum() for i in range(len(a))])),
        "token-euclidean": -float(np.mean([np.linalg.norm(a[i] - b[i]) for i in range(len(a))])),
        "token-cosine": float(np.mean([cos(a[i], b[i]) for i in range(len(a))])),
    }


def test_prompt_metrics_match_a_numpy_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = _numpy_metrics(a, b)
    assert set(pm.METRIC_FUNCTIONS) == set(pm.PROMPT_METRICS) == set(expected)
    for name, fn in pm.METRIC_FUNCTIONS.items():
        assert fn(torch.tensor(a).float(), torch.tensor(b).float()) == pytest.approx(
            expected[name], rel=1e-5
        ), name


def test_identical_prompts_are_most_similar():
    gen = torch.Generator().manual_seed(1)
    p = torch.randn(4, 6, generator=gen)
    others = [torch.randn(4, 6, generator=gen) for _ in range(5)] + [p + 0.1, 2 * p - 1]
    for name, fn in pm.METRIC_FUNCTIONS.items():
        self_score = fn(p, p)
        assert self_score == pytest.approx(1.0 if name.endswith("cosine") else 0.0, abs=1e-9)
        assert all(self_score >= fn(p, q) for q in others), name


def test_prompt_metrics_refuse_mismatched_shapes():
    p = torch.zeros(4, 6)
    with pytest.raises(IncompatibleEmbeddingError, match="prompt lengths differ"):
        pm.token_cosine(p, torch.zeros(5, 6))
    with pytest.raises(IncompatibleEmbeddingError, match="hidden sizes differ"):
        pm.mean_euclidean(p, torch.zeros(4, 7))
    with pytest.raises(IncompatibleEmbeddingError, match=r"\(L, H\)"):
        pm.mean_cosine(p.mean(0), p.mean(0))
    # zero vectors: cosine 0, not NaN
    assert pm.mean_cosine(p, torch.ones(4, 6)) == 0.0


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_and_unknown_name():
    expected = {f"tupate-{m}" for m in ("lora", "bitfit", "prefix", "prompt")}
    expected |= {f"tupate-{m}-delta" for m in ("lora", "bitfit", "prefix", "prompt")}
    expected |= {f"prompt-{m}" for m in pm.PROMPT_METRICS}
    expected |= {"ensemble", "ensemble-rank", "datasize", "random", "curvegrad"}
    expected |= {"ensemble-delta", "ensemble-rank-delta"}
    expected |= {"textemb", "taskemb", "logme", "affinity", "gain-model", "default"}
    assert set(PREDICTORS) == expected
    for name in expected - {"affinity"}:
        predictor = get_predictor(name)
        assert isinstance(predictor, Predictor) and predictor.name == name
        assert isinstance(predictor.reads, Reads)
    with pytest.raises(ValueError, match="affinity predictor needs a fitted scorer"):
        get_predictor("affinity")  # refused at once, before any target is tuned for it
    with pytest.raises(ValueError, match="unknown predictor 'nope'.*tupate-lora"):
        get_predictor("nope")


# --- similarity predictors over the pool ------------------------------------------------------


def test_tupate_predictor_matches_api_rank(pool):
    scores = get_predictor("tupate-lora").score("sms_spam", SOURCES, pool)
    assert set(scores) == set(SOURCES) and scores.info == {"method": "lora"}
    table = api.rank(
        "sms_spam", store=pool.store, backbone=_location(pool), sources=SOURCES, predictor="tupate"
    )
    for row in table.itertuples():
        assert scores[row.source] == pytest.approx(row.score, abs=1e-12)
    # rank(predictor="tupate") is tupate-lora; another method goes through the registry
    same = api.rank(
        "sms_spam",
        store=pool.store,
        backbone=_location(pool),
        sources=SOURCES,
        predictor="tupate-lora",
    )
    assert same.equals(table)
    bitfit = api.rank(
        "sms_spam", store=pool.store, backbone=_location(pool), predictor="tupate-bitfit"
    )
    assert list(bitfit.columns) == ["source", "score", "rank", "num_train", "family"]
    assert set(bitfit.source) == set(SOURCES)
    with pytest.raises(ValueError, match="unknown predictor"):
        api.rank("sms_spam", store=pool.store, backbone=_location(pool), predictor="nope")


def _location(pool: Pool) -> str:
    return pool.backbone_location()


def test_tupate_prompt_is_the_cosine_of_token_means(pool):
    scores = get_predictor("tupate-prompt").score("sms_spam", SOURCES, pool)
    emb = pool.embeddings("prompt")
    assert emb["sms_spam"].tensor.shape == (PROMPT["prompt_length"], 32)
    for s in SOURCES:
        a, b = emb["sms_spam"].tensor.mean(0), emb[s].tensor.mean(0)
        assert scores[s] == pytest.approx(float(torch.cosine_similarity(a, b, dim=0)), abs=1e-6)
        assert scores[s] == pytest.approx(
            get_predictor("prompt-mean-cosine").score("sms_spam", SOURCES, pool)[s], abs=1e-7
        )


def test_prompt_metric_predictors_use_the_stored_prompt_matrices(pool):
    emb = pool.embeddings("prompt")
    for metric in pm.PROMPT_METRICS:
        scores = get_predictor(f"prompt-{metric}").score("snli", ["sms_spam", "mnli", "snli"], pool)
        assert set(scores) == {"sms_spam", "mnli"}  # the target is never its own source
        expected = _numpy_metrics(emb["snli"].tensor.double().numpy(), emb["mnli"].tensor.numpy())
        assert scores["mnli"] == pytest.approx(expected[metric], rel=1e-5)


def test_ensemble_is_the_mean_of_per_method_cosines(pool):
    scores = get_predictor("ensemble").score("mnli", ["sms_spam", "snli"], pool)
    assert scores.info["methods"] == list(METHODS)
    for s in ("sms_spam", "snli"):
        cosines = [
            get_predictor(f"tupate-{m}").score("mnli", ["sms_spam", "snli"], pool)[s]
            for m in METHODS
        ]
        assert scores[s] == pytest.approx(np.mean(cosines), abs=1e-12)


def test_ensemble_rank_is_the_negated_mean_rank(pool):
    sources = ["sms_spam", "snli"]
    scores = get_predictor("ensemble-rank").score("mnli", sources, pool)
    ranks = []
    for m in METHODS:
        cos = get_predictor(f"tupate-{m}").score("mnli", sources, pool)
        ranks.append(rankdata([-cos[s] for s in sources]))
    expected = -np.mean(ranks, axis=0)
    assert [scores[s] for s in sources] == pytest.approx(expected.tolist())
    assert all(-2.0 <= v <= -1.0 for v in scores.values())


def test_ensemble_without_methods_is_an_error(pool):
    with pytest.raises(ValueError, match="no tuning method"):
        get_predictor("ensemble", methods=("prefix",)).score("mnli", ["snli"], pool)


def test_mixed_backbones_are_refused(pool):
    for name in ("tupate-lora", "ensemble", "curvegrad"):
        predictor = get_predictor(name)
        if name == "ensemble":  # qnli has no run on this backbone for any method
            with pytest.raises(ValueError):
                predictor.score("mnli", ["snli", "qnli"], pool)
            continue
        with pytest.raises(IncompatibleEmbeddingError, match="backbone"):
            predictor.score("mnli", ["snli", "qnli"], pool)
    with pytest.raises(IncompatibleEmbeddingError):
        api.rank("mnli", store=pool.store, backbone=_location(pool), predictor="curvegrad",
                 sources=["snli", "qnli"])  # fmt: skip


# --- baselines --------------------------------------------------------------------------------


def test_datasize_orders_by_training_size(pool):
    scores = get_predictor("datasize").score("mnli", ["snli", "sms_spam", "mnli"], pool)
    assert scores == {"sms_spam": 40.0, "snli": 24.0}
    table = api.rank("mnli", store=pool.store, backbone=_location(pool), predictor="datasize")
    assert list(table.source) == ["sms_spam", "snli"] and list(table["rank"]) == [1, 2]


def test_random_is_deterministic_per_seed_and_target():
    names = [f"task{i}" for i in range(20)]
    a = get_predictor("random").score("t", names, None)
    assert a == get_predictor("random", seed=0).score("t", list(reversed(names)), None)
    assert a != get_predictor("random", seed=1).score("t", names, None)
    assert a != get_predictor("random").score("u", names, None)
    assert all(0.0 <= v < 1.0 for v in a.values())
    assert get_predictor("random").score("t", names[:3], None) == {s: a[s] for s in names[:3]}


def test_loss_curve_slopes_of_a_linear_curve():
    steps = np.arange(1, 201)
    loss = 3.0 - 2.0 * steps / 200
    slopes = loss_curve_slopes(loss, steps)
    assert slopes.shape == (5,)
    assert slopes == pytest.approx([-2.0] * 5)
    # default steps 1..n, and the window falls back to the nearest points on short curves
    short = 3.0 - 2.0 * np.arange(1, 7) / 6
    assert loss_curve_slopes(short) == pytest.approx([-2.0] * 5)


def test_loss_curve_slopes_of_an_exponential_curve():
    steps = np.arange(1, 1001)
    loss = np.exp(-3.0 * steps / 1000)
    slopes = loss_curve_slopes(loss, steps, window=0.01)
    points = np.array([0.1, 0.2, 0.3, 0.5, 0.7])
    assert slopes == pytest.approx(-3.0 * np.exp(-3.0 * points), rel=1e-3)
    assert np.all(np.diff(slopes) > 0)  # flattening
    with pytest.raises(ValueError, match="at least 2"):
        loss_curve_slopes([1.0])
    with pytest.raises(ValueError, match="equal length"):
        loss_curve_slopes([1.0, 2.0], [1])


def test_curvegrad_scores_every_source(pool):
    predictor = get_predictor("curvegrad")
    scores = predictor.score("mnli", ["sms_spam", "snli"], pool)
    assert set(scores) == {"sms_spam", "snli"}
    g = {t: predictor.vector(pool, t) for t in ("mnli", "sms_spam", "snli")}
    for s in scores:
        assert np.isfinite(scores[s]) and scores[s] <= 0
        assert scores[s] == pytest.approx(-np.linalg.norm(g["mnli"] - g[s]))


def test_text_embedding_shape_and_self_similarity(pool, tiny_backbone):
    from taskscout.backbone import load_backbone

    _, tokenizer, encoder = load_backbone(str(tiny_backbone))
    texts = ["the dog was happy", ("a man is here", "the man is in a house"), "bad day"]
    x = text_embedding(texts, tokenizer, encoder, batch_size=2)
    assert x.shape == (32,) and x.dtype == torch.float32
    assert torch.allclose(x, text_embedding(texts, tokenizer, encoder, batch_size=64), atol=1e-5)
    # a task is most similar to itself: add a copy of mnli's data under another name
    copy_pool = Pool(pool.store, pool.backbone, tasks={"mnli_copy": pool.task_data("mnli", 1000)})
    scores = get_predictor("textemb").score("mnli", ["mnli_copy", "snli", "sms_spam"], copy_pool)
    assert scores["mnli_copy"] == pytest.approx(1.0, abs=1e-6)
    assert max(scores, key=scores.get) == "mnli_copy"


def test_taskemb_shape_and_self_similarity(pool):
    predictor = get_predictor("taskemb", max_examples=16)
    vectors = {t: predictor.vector(pool, t) for t in TASKS}
    for v in vectors.values():
        assert v.shape == (2 * 32,) and bool((v >= 0).all()) and float(v.sum()) > 0
    scores = predictor.score("mnli", ["sms_spam", "snli"], pool)
    assert set(scores) == {"sms_spam", "snli"} and all(-1 <= s <= 1 for s in scores.values())
    self_cos = torch.cosine_similarity(vectors["mnli"], vectors["mnli"], dim=0)
    assert float(self_cos) == pytest.approx(1.0) and all(
        float(self_cos) >= s for s in scores.values()
    )
    # a prompt-tuned model (virtual tokens in the hidden states) gives the same shape
    model, tokenizer = load_tuned_model(pool, pool.require_run("snli", "prompt"))
    from taskscout.encode import encode_rows

    split = encode_rows(pool.task_data("snli", 8).train, model.spec, tokenizer, 64)
    fisher = fisher_task_embedding(model, split, tokenizer.pad_token_id, max_examples=8)
    assert fisher.shape == (64,) and float(fisher.sum()) > 0


def test_fisher_is_batch_size_invariant(pool):
    from taskscout.encode import encode_rows

    model, tokenizer = load_tuned_model(pool, pool.require_run("sms_spam", "lora"))
    split = encode_rows(pool.task_data("sms_spam", 12).train, model.spec, tokenizer, 64)
    one = fisher_task_embedding(model, split, tokenizer.pad_token_id, batch_size=1)
    many = fisher_task_embedding(model, split, tokenizer.pad_token_id, batch_size=12)
    assert torch.allclose(one, many, rtol=1e-4, atol=1e-10)


def test_logme_prefers_separable_features():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    centers = rng.normal(size=(3, 16)) * 4
    separable = centers[labels] + rng.normal(size=(120, 16)) * 0.5
    noise = rng.normal(size=(120, 16))
    assert logme(separable, labels) > logme(noise, labels)
    # regression: a linear function of the features beats features unrelated to the target
    w = rng.normal(size=16)
    y = noise @ w + 0.1 * rng.normal(size=120)
    assert logme(noise, y, regression=True) > logme(rng.normal(size=(120, 16)), y, regression=True)
    # more features than examples works too
    wide = rng.normal(size=(20, 64))
    assert np.isfinite(logme(wide, labels[:20] % 2))
    with pytest.raises(ValueError, match="labels"):
        logme(noise, labels[:10])


def test_logme_predictor_scores_sources(pool):
    scores = get_predictor("logme", max_examples=24).score("sms_spam", SOURCES, pool)
    assert set(scores) == set(SOURCES) and all(np.isfinite(v) for v in scores.values())


def test_pool_open_resolves_the_backbone_id(pool, tiny_backbone):
    assert pool.backbone == resolve_backbone(str(tiny_backbone)).backbone_id
    assert pool.run("qnli") is None and pool.run("mnli", "lora").method == "lora"


# --- api.predict: long-form scores for several targets -----------------------------------------


def test_predict_long_form_matches_rank(pool, tiny_backbone):
    frame, skipped = api.predict(
        ["sms_spam", "mnli"],
        store=pool.store,
        predictors="tupate-lora,datasize",
        backbone=str(tiny_backbone),
        sources=["sms_spam", "mnli", "snli"],
    )
    assert skipped == {}
    assert list(frame.columns) == ["target", "source", "predictor", "score"]
    assert len(frame) == 2 * 2 * 2  # targets x (sources minus the target) x predictors
    assert not (frame["target"] == frame["source"]).any()
    ranked = api.rank(
        "mnli",
        store=pool.store,
        backbone=str(tiny_backbone),
        sources=["sms_spam", "snli"],
        predictor="tupate",
    )
    got = frame[(frame.target == "mnli") & (frame.predictor == "tupate-lora")].set_index("source")
    for row in ranked.itertuples():
        assert got.loc[row.source, "score"] == pytest.approx(row.score)


def test_predict_all_skips_what_the_pool_cannot_serve(pool, tiny_backbone):
    frame, skipped = api.predict(
        ["mnli"],
        store=pool.store,
        predictors="all",
        backbone=str(tiny_backbone),
        sources=["sms_spam", "mnli", "snli"],
    )
    assert "tupate-prefix" in skipped and "prefix" in skipped["tupate-prefix"]
    assert "tupate-prefix" not in set(frame["predictor"])
    assert {"tupate-lora", "tupate-bitfit", "ensemble", "datasize"} <= set(frame["predictor"])
    assert frame.groupby("predictor").size().eq(2).all()  # no partial predictor rows


def test_predict_errors(pool, tiny_backbone):
    with pytest.raises(ValueError, match="no run"):
        api.predict(["nope"], store=pool.store, backbone=str(tiny_backbone))
    with pytest.raises(ValueError, match="prefix"):
        api.predict(
            ["mnli"],
            store=pool.store,
            predictors="tupate-prefix",
            backbone=str(tiny_backbone),
            sources=["snli"],
        )


# --- tupate-<m>-delta -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_delta_init_is_the_untrained_method_of_the_run(tmp_path, tiny_backbone, method):
    """With lr 0 training changes nothing, so the stored embedding must equal the rebuilt init
    exactly: the init is rebuilt under the same RNG state api.tune builds the method with."""
    from taskscout.embeddings.task_embedding import init_embedding

    db = RunStore(tmp_path / "store")
    opts = PROMPT if method == "prompt" else None
    run = api.tune(
        "snli",
        method=method,
        store=db,
        backbone=str(tiny_backbone),
        max_train=16,
        max_dev=8,
        lr=0.0,
        method_options=opts,
        **{**QUIET, "epochs": 1},
    )
    stored = embedding_of_run(db, run, "early")
    rng = torch.random.get_rng_state()
    init = init_embedding(run, stored.layer_reduce)
    assert torch.equal(torch.random.get_rng_state(), rng)  # the caller's RNG stream is untouched
    assert init.shape == stored.tensor.shape
    assert torch.equal(init, stored.tensor)
    # a trained run moves away from it
    trained = api.tune(
        "snli",
        method=method,
        store=db,
        backbone=str(tiny_backbone),
        max_train=16,
        max_dev=8,
        method_options=opts,
        **{**QUIET, "epochs": 1},
    )
    moved = embedding_of_run(db, trained, "early").tensor
    assert not torch.equal(init_embedding(trained, stored.layer_reduce), moved)


def test_delta_predictor_scores_updates_not_raw_vectors(pool):
    from taskscout.embeddings.task_embedding import init_embedding
    from taskscout.embeddings.tupate import as_vector

    delta = get_predictor("tupate-lora-delta").score("sms_spam", SOURCES, pool)
    assert delta.info == {"method": "lora"}
    emb = pool.embeddings("lora")

    def upd(task):
        run = pool.store.get_run(emb[task].record.run_id)
        return as_vector(emb[task].tensor).double() - init_embedding(run).double()

    for s in SOURCES:
        want = float(torch.cosine_similarity(upd("sms_spam"), upd(s), dim=0))
        assert delta[s] == pytest.approx(want, abs=1e-9)
        assert -1.0 <= delta[s] <= 1.0
    raw = get_predictor("tupate-lora").score("sms_spam", SOURCES, pool)
    assert any(abs(raw[s] - delta[s]) > 1e-3 for s in SOURCES)
    with pytest.raises(IncompatibleEmbeddingError, match="backbone"):
        get_predictor("tupate-lora-delta").score("sms_spam", ["snli", "qnli"], pool)


def test_ensemble_delta_is_the_mean_of_the_delta_similarities(pool):
    ens = get_predictor("ensemble-delta").score("sms_spam", SOURCES, pool)
    used = ens.info["methods"]
    assert used == ["lora", "bitfit", "prompt"]
    per = [get_predictor(f"tupate-{m}-delta").score("sms_spam", SOURCES, pool) for m in used]
    for s in SOURCES:
        assert ens[s] == pytest.approx(float(np.mean([p[s] for p in per])), abs=1e-12)
