"""MUSIQ without oracles: TF-recorded resize/hash references, npz round trip and strictness,
bucketing, batching and the public entry point. Tiny random models keep it fast."""

from __future__ import annotations

from unittest import mock

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unires_jax.convert import musiq as convert_musiq
from unires_jax.quality import musiq, musiq_model, musiq_preprocess

TINY = {
    "resnet_width": 32,
    "hidden_size": 64,
    "num_heads": 2,
    "mlp_dim": 128,
    "num_layers": 2,
}


def _tiny_model(seed: int = 0, **overrides) -> musiq.MusiqModel:
    cfg = musiq.musiq_config("official", **{**TINY, **overrides})
    model = musiq.MusiqModel(cfg, rngs=nnx.Rngs(seed))
    # Move norms, biases and CLS off their trivial initial values so every parameter matters.
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    flat = [
        (p, v[...] + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
        for p, v in nnx.to_flat_state(state)
    ]
    nnx.update(model, nnx.from_flat_state(flat))
    return model


def _images(h: int, w: int, n: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, h, w, 3), dtype=np.float32)


# --- preprocessing, against values recorded from TensorFlow 2.21 ---------------------------------

# tf.image.resize(method="gaussian") of identity columns: the [out, in] resize matrix.
TF_GAUSSIAN_7_TO_3 = np.array(
    [
        [0.33143124, 0.6455398, 0.023028977, 0, 0, 0, 0],
        [0, 0, 0.10650697, 0.786986, 0.10650697, 0, 0],
        [0, 0, 0, 0, 0.023029022, 0.64554006, 0.3314309],
    ]
)
TF_GAUSSIAN_7_TO_3_ANTIALIAS = np.array(
    [
        [0.34220523, 0.38678136, 0.20968674, 0.054525882, 0.006800821, 0, 0],
        [
            0.012560203,
            0.07882796,
            0.23729607,
            0.34263152,
            0.23729607,
            0.07882796,
            0.012560203,
        ],
        [0, 0, 0.006800822, 0.05452592, 0.20968677, 0.38678133, 0.34220514],
    ]
)
# (in, out, antialias, row) -> (first nonzero column, nonzero weights): rows where float32
# rounding decides whether a tap at the kernel's edge is in or out.
TF_GAUSSIAN_ROWS = {
    (512, 384, False, 382): (509, [0.5, 0.5]),
    (300, 224, False, 222): (296, [0.009566842, 0.5040415, 0.48639163]),
    (300, 224, True, 85): (
        112,
        [0.006616748, 0.1914404, 0.59556174, 0.19921587, 0.007165147],
    ),
    (1000, 384, True, 25): (
        62,
        [
            0.00341254,
            0.025445646,
            0.10519425,
            0.24110882,
            0.30639172,
            0.2158657,
            0.084320456,
            0.018261015,
        ],
    ),
}
# tf.compat.v1.image.resize(range(10), [count, 1], NEAREST_NEIGHBOR).
TF_NEAREST_HASH = {
    7: [0, 1, 2, 4, 5, 7, 8],
    12: [0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9],
    16: [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9],
}


def test_gaussian_resize_matches_tensorflow():
    np.testing.assert_allclose(
        musiq_preprocess.resize_matrix(7, 3, "tf_gaussian"),
        TF_GAUSSIAN_7_TO_3,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        musiq_preprocess.resize_matrix(7, 3, "tf_gaussian", antialias=True),
        TF_GAUSSIAN_7_TO_3_ANTIALIAS,
        atol=1e-7,
    )
    for (n, m, aa, row), (start, weights) in TF_GAUSSIAN_ROWS.items():
        got = musiq_preprocess.resize_matrix(n, m, "tf_gaussian", aa)[row]
        expected = np.zeros(n)
        expected[start : start + len(weights)] = weights
        np.testing.assert_allclose(
            got, expected, atol=1e-7, err_msg=f"{n}->{m} antialias={aa} row {row}"
        )


def test_hashed_positions_match_tensorflow_nearest_resize():
    for count, expected in TF_NEAREST_HASH.items():
        np.testing.assert_array_equal(
            musiq_preprocess.hashed_positions(10, 1, count), expected
        )
    grid = musiq_preprocess.hashed_positions(10, 7, 12).reshape(7, 12)
    np.testing.assert_array_equal(
        grid // 10, np.repeat(np.array(TF_NEAREST_HASH[7])[:, None], 12, axis=1)
    )
    np.testing.assert_array_equal(
        grid % 10, np.repeat(np.array(TF_NEAREST_HASH[12])[None], 7, axis=0)
    )


def test_bicubic_resize_is_identity_at_same_size_and_preserves_constants():
    x = _images(37, 23)[0]
    np.testing.assert_array_equal(
        musiq_preprocess.resize(x, 37, 23, "torch_bicubic"), x
    )
    flat = np.full((50, 70, 3), 0.25, np.float32)
    np.testing.assert_allclose(
        musiq_preprocess.resize(flat, 19, 41, "torch_bicubic"), 0.25, atol=1e-6
    )
    np.testing.assert_allclose(
        musiq_preprocess.resize(flat, 19, 41, "tf_gaussian"), 0.25, atol=1e-6
    )


def test_sequence_has_padded_resized_scales_then_every_native_patch():
    seq = musiq_preprocess.multiscale_patches(
        _images(200, 300)[0] * 2 - 1,
        patch_size=32,
        grid_size=10,
        longer_side_lengths=(384, 224),
        method="tf_gaussian",
    )
    # 224 scale: 149x224 -> 5x7 patches in 49 slots; 384 scale: 256x384 -> 8x12 in 144; native 7x10.
    assert len(seq) == 49 + 144 + 70
    np.testing.assert_array_equal(seq.mask[:49], np.arange(49) < 35)
    np.testing.assert_array_equal(seq.mask[49:193], np.arange(144) < 96)
    assert seq.mask[193:].all()
    np.testing.assert_array_equal(
        seq.scale[seq.mask], np.repeat([0, 1, 2], [35, 96, 70])
    )
    assert not seq.patches[~seq.mask].any() and not seq.spatial[~seq.mask].any()
    assert seq.spatial.max() < 100


def test_bucket_lengths():
    assert musiq_preprocess.bucket_length(242, (256, 320)) == 256
    assert musiq_preprocess.bucket_length(257, (256, 320)) == 320
    assert musiq_preprocess.bucket_length(700, (256, 320)) == 960


# --- numerics switches -------------------------------------------------------------------------


def test_weight_standardisation_uses_population_or_sample_std():
    k = np.random.default_rng(0).standard_normal((3, 3, 4, 5)).astype(np.float32)
    flat = k.reshape(-1, 5)
    for ddof in (0, 1):
        expected = (flat - flat.mean(0)) / (flat.std(0, ddof=ddof) + 1e-5)
        got = musiq_model.standardize_weight(jnp.asarray(k), ddof)
        np.testing.assert_allclose(
            np.asarray(got).reshape(-1, 5), expected, rtol=1e-5, atol=1e-6
        )


def test_official_and_pyiqa_switches_change_the_score():
    model = _tiny_model()
    params = convert_musiq.model_params(model)
    images = _images(64, 96)
    scores = {}
    for pre in ("official", "pyiqa"):
        cfg = musiq.musiq_config(pre, **TINY)
        other = musiq.MusiqModel(cfg, rngs=nnx.Rngs(1))
        flat = [
            (p, params[".".join(map(str, p))])
            for p, _ in nnx.to_flat_state(nnx.state(other, nnx.Param))
        ]
        nnx.update(other, nnx.from_flat_state(flat))
        scores[pre] = musiq.MusiqScorer(other).score(images)
    assert abs(scores["official"][0] - scores["pyiqa"][0]) > 1e-4


def test_ava_score_is_the_mean_of_the_10_bin_distribution():
    logits = jnp.stack([jnp.zeros(10), jnp.full(10, -50.0).at[6].set(50.0)])
    np.testing.assert_allclose(
        musiq_model.logits_to_score(logits), [5.5, 7.0], atol=1e-5
    )
    np.testing.assert_allclose(musiq_model.logits_to_score(jnp.array([[3.5]])), [3.5])


# --- official .npz ------------------------------------------------------------------------------


def test_official_npz_round_trips_exactly(tmp_path):
    model = _tiny_model()
    path = tmp_path / "tiny_ckpt.npz"
    convert_musiq.save_official_npz(model, path)
    with np.load(path) as npz:
        shapes = {k: npz[k].shape for k in npz.files}
    assert shapes == convert_musiq.official_shapes(model.cfg)
    assert shapes[
        "opt/target/Transformer/encoderblock_1/MultiHeadDotProductAttention_1/query/kernel"
    ] == (64, 2, 32)
    assert shapes["opt/target/block1/unit1/gn_proj/scale"] == (1, 1, 1, 128)

    loaded = convert_musiq.load_official_npz(path, model.cfg)
    before, after = (
        convert_musiq.model_params(model),
        convert_musiq.model_params(loaded),
    )
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    images = _images(70, 50)
    np.testing.assert_array_equal(
        musiq.MusiqScorer(loaded).score(images), musiq.MusiqScorer(model).score(images)
    )


def test_npz_with_missing_keys_names_them_and_the_file(tmp_path):
    model = _tiny_model()
    arrays = convert_musiq.params_to_official(
        convert_musiq.model_params(model), model.cfg
    )
    dropped = sorted(k for k in arrays if "encoderblock_1/" in k)
    path = tmp_path / "truncated.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if k not in dropped})
    with pytest.raises(convert_musiq.MusiqCheckpointError) as err:
        convert_musiq.load_official_npz(path, model.cfg)
    msg = str(err.value)
    assert (
        str(path) in msg and f"{len(dropped)} missing keys" in msg and dropped[0] in msg
    )


def test_truncated_npz_file_names_the_file(tmp_path):
    path = tmp_path / "cut.npz"
    convert_musiq.save_official_npz(_tiny_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(convert_musiq.MusiqCheckpointError, match="cut.npz.*truncated"):
        musiq.load(str(path), **TINY)


def test_wrong_layout_npz_names_mismatched_keys(tmp_path):
    model = _tiny_model()
    arrays = convert_musiq.params_to_official(
        convert_musiq.model_params(model), model.cfg
    )
    conv = "opt/target/conv_root/kernel"
    query = "opt/target/Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"
    arrays[conv] = arrays[conv].transpose(3, 2, 0, 1)  # PyTorch OIHW
    arrays[query] = arrays[query].reshape(64, 64).T  # a plain [out, in] matrix
    path = tmp_path / "wrong_layout.npz"
    np.savez(path, **arrays)
    with pytest.raises(convert_musiq.MusiqCheckpointError) as err:
        convert_musiq.load_official_npz(path, model.cfg)
    msg = str(err.value)
    assert "wrong_layout.npz" in msg and "2 mismatched keys" in msg
    assert f"{conv}: file (32, 3, 7, 7), expected (7, 7, 3, 32)" in msg and query in msg


def test_npz_without_official_prefix_is_rejected(tmp_path):
    path = tmp_path / "pyiqa_style.npz"
    np.savez(path, **{"conv_root.weight": np.zeros((64, 3, 7, 7), np.float32)})
    with pytest.raises(
        convert_musiq.MusiqCheckpointError,
        match="pyiqa_style.npz.*no keys under 'opt/target/'",
    ):
        musiq.load(str(path))


def test_head_mismatch_suggests_the_right_head(tmp_path):
    path = tmp_path / "ava_like.npz"
    convert_musiq.save_official_npz(_tiny_model(num_classes=10), path)
    with pytest.raises(
        convert_musiq.MusiqCheckpointError,
        match=r"10 outputs; pass head= one of \['ava'\]",
    ):
        musiq.load(str(path), head="koniq", **TINY)
    assert musiq.load(str(path), head="ava", **TINY).score(_images(40, 40)).shape == (
        1,
    )


def test_load_without_checkpoint_says_which_file_to_get():
    with pytest.raises(ValueError, match="never downloads.*koniq_ckpt.npz"):
        musiq.load(None)
    with pytest.raises(ValueError, match="spaq_ckpt.npz"):
        musiq.load(head="spaq")
    with pytest.raises(ValueError, match="unknown MUSIQ head"):
        musiq.load("x.npz", head="imagenet")


# --- scoring: batching and buckets ---------------------------------------------------------------


def test_scorer_interface_and_input_checks():
    scorer = musiq.MusiqScorer(_tiny_model())
    assert scorer.name == "musiq" and scorer.higher_is_better is True
    out = scorer.score(jnp.asarray(_images(48, 40, n=3)))
    assert out.shape == (3,) and out.dtype == np.float32 and np.isfinite(out).all()
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        scorer.score(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        scorer.score(np.zeros((1, 8, 8, 2), np.float32))
    grey = _images(40, 40)[..., :1]
    np.testing.assert_array_equal(
        scorer.score(grey), scorer.score(np.repeat(grey, 3, axis=-1))
    )


def test_padding_and_batching_do_not_change_scores():
    model = _tiny_model()
    images = [
        _images(h, w, seed=i)[0]
        for i, (h, w) in enumerate([(40, 72), (96, 64), (33, 33)])
    ]
    scorer = musiq.MusiqScorer(model)
    alone = np.concatenate([scorer.score(img[None]) for img in images])
    together = scorer.score(images)  # three sizes, one call
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Same weights (same seed), every image padded to 1024 tokens in one batch of 4.
    long_buckets = musiq.MusiqScorer(_tiny_model(seq_buckets=(1024,), max_batch=4))
    np.testing.assert_allclose(long_buckets.score(images), alone, atol=1e-5)


def test_sizes_in_one_bucket_compile_once():
    scorer = musiq.MusiqScorer(_tiny_model())
    traces = []
    real = musiq_model.logits_to_score

    def counting(logits):
        traces.append(logits.shape)
        return real(logits)

    # 224x224 -> 49 + 144 + 49 tokens, 240x224 -> 49 + 144 + 56: both pad to the 256 bucket.
    with mock.patch.object(musiq, "logits_to_score", counting):
        scorer.score(_images(224, 224))
        scorer.score(_images(240, 224))
        scorer.score([_images(224, 224)[0], _images(240, 224)[0]])
    assert traces == [(1, 1), (2, 1)]
