"""UniRes as an ImageRestorer: the weight choice per image, what its sidecars record, the search's
image used as the output (no second sampling), and the loader's option checks.

The model is a stand-in with the `Restorer` surface the adapter uses (the model is tested in
test_restorer.py); files go through the family-blind `batch.restore_files`.
"""

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from unires_jax import restore
from unires_jax.diffusion import experts
from unires_jax.restore import batch, unires
from unires_jax.restore.inputs import collect_inputs
from unires_jax.restore.restorer import RestoreSettings

RNG = np.random.default_rng(0)


class StubModel:
    """The `Restorer` surface `UniResRestorer` uses; restores to the image itself."""

    def __init__(self, fail_widths=(), ensemble=1):
        self.settings = RestoreSettings(
            steps=2, tile=64, tile_overlap=16, ensemble=ensemble
        )
        self.experts = [e.name for e in experts.DEFAULT_EXPERTS]
        self.unet_record = {"dtype": "float32", "attention": "none (stand-in)"}
        self.fail_widths = set(fail_widths)
        self.calls = []

    def weights_matrix(self, weights):
        return experts.weights_matrix(weights, self.experts)

    def timed_restore(self, image, weights, *, seed=0, first_copy=None):
        self.calls.append((image.shape, dict(weights), seed, first_copy is not None))
        if image.shape[1] in self.fail_widths:
            raise RuntimeError("out of memory (simulated)")
        peak = 65535.0 if image.dtype == np.uint16 else 255.0
        return image.astype(np.float32) / peak, {"seconds": 0.01, "unet_evaluations": 4}


PRESET = unires.fixed_weights(experts.PRESETS["most-popular"], "preset most-popular")


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _rgb(h=6, w=8):
    return RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)


def _restore(inputs, out, model=None, chooser=PRESET, **kwargs):
    errors = io.StringIO()
    model = model or StubModel()
    restorer = unires.UniResRestorer(
        model, chooser, checkpoint=kwargs.pop("checkpoint", None)
    )
    planned = batch.plan(collect_inputs(inputs), out)
    report = batch.restore_files(
        restorer, planned, progress=False, errors=errors, **kwargs
    )
    return report, errors.getvalue(), model


def test_sidecar_records_weights_settings_checkpoint_and_unet_evaluations(tmp_path):
    path = _png(tmp_path / "a.png", _rgb())
    out = tmp_path / "out"
    report, _, _ = _restore([path], out, seed=7, checkpoint=str(tmp_path / "ckpt"))
    sidecar = json.loads((out / "a.json").read_text())
    assert sidecar["family"] == "unires"
    assert sidecar["weights"] == {
        "BR": 0,
        "SR": 0,
        "MD": 0,
        "DD": 0,
        "DN": -0.2,
        "DownLQ": 1.2,
    }
    assert sidecar["weights_source"] == "preset most-popular"
    assert sidecar["steps"] == 2 and sidecar["seed"] == 7
    assert sidecar["settings"] == dataclasses.asdict(StubModel().settings)
    assert sidecar["checkpoint"] == str((tmp_path / "ckpt").resolve())
    assert sidecar["experts"] == ["BR", "SR", "MD", "DD", "DN", "DownLQ"]
    assert sidecar["unet"]["attention"] == "none (stand-in)"
    assert sidecar["unet_evaluations"] == 4
    assert {"choose_seconds", "sample_seconds", "read_seconds"} <= set(
        sidecar["timings"]
    )
    assert report.results[0].details["weights"] == sidecar["weights"]


def test_weights_are_chosen_per_image_with_the_restore_seed_and_the_input_name(
    tmp_path,
):
    _png(tmp_path / "in" / "narrow.png", _rgb(6, 4))
    _png(tmp_path / "in" / "wide.png", _rgb(6, 12))
    seen = []

    def by_width(pixels, restorer, *, seed, name):
        seen.append((seed, name))
        sr = 1.0 if pixels.shape[1] > 8 else 0.0
        return unires.WeightChoice(
            {"SR": sr, "BR": 1.0 - sr}, "test", {"width": pixels.shape[1]}
        )

    out = tmp_path / "out"
    _, _, model = _restore([tmp_path / "in"], out, chooser=by_width, seed=3)
    assert seen == [
        (3, str(tmp_path / "in" / "narrow.png")),
        (3, str(tmp_path / "in" / "wide.png")),
    ]
    assert [c[1] for c in model.calls] == [
        {"BR": 1.0, "SR": 0.0, "MD": 0.0, "DD": 0.0, "DN": 0.0, "DownLQ": 0.0},
        {"BR": 0.0, "SR": 1.0, "MD": 0.0, "DD": 0.0, "DN": 0.0, "DownLQ": 0.0},
    ]
    sidecar = json.loads((out / "wide.json").read_text())
    assert sidecar["weights_source"] == "test" and sidecar["weights_details"] == {
        "width": 12
    }


def test_a_choosers_image_is_the_output_and_is_not_sampled_again(tmp_path):
    path = _png(tmp_path / "a.png", _rgb())
    chosen = RNG.uniform(0, 1, (6, 8, 3)).astype(np.float32)

    def searching(pixels, restorer, *, seed, name):
        return unires.WeightChoice(
            {"DN": 1.0}, "search", {"score": 3.0}, image=chosen, unet_evaluations=37
        )

    out = tmp_path / "out"
    report, _, model = _restore([path], out, chooser=searching)
    assert model.calls == []  # nothing sampled besides the search
    assert report.results[0].details["unet_evaluations"] == 37
    written = np.asarray(Image.open(out / "a.png"))
    np.testing.assert_array_equal(written, np.round(chosen * 255).astype(np.uint8))

    # A self-ensemble reuses the chosen image as its first copy and samples the others.
    model = StubModel(ensemble=4)
    report, _, model = _restore([path], tmp_path / "out4", model, chooser=searching)
    assert [c[3] for c in model.calls] == [True]
    assert report.results[0].details["unet_evaluations"] == 37 + 4


def test_a_choosers_output_score_is_of_the_written_file_and_a_failing_one_is_recorded(
    tmp_path,
):
    _png(tmp_path / "in" / "a.png", _rgb(6, 8))
    _png(tmp_path / "in" / "b.png", _rgb(6, 9))
    seen = {}

    def score(path):
        if path.name == "b.png":
            raise ValueError("cannot score (simulated)")
        seen[path.name] = np.asarray(Image.open(path)).copy()  # the file exists by now
        return 0.25

    def chooser(pixels, restorer, *, seed, name):
        return unires.WeightChoice(
            {"SR": 1.0}, "test", {"score": 0.5}, score_output=score
        )

    out = tmp_path / "out"
    report, _, _ = _restore([tmp_path / "in"], out, chooser=chooser)
    assert [r.status for r in report.results] == ["ok", "ok"]
    np.testing.assert_array_equal(seen["a.png"], np.asarray(Image.open(out / "a.png")))
    details = json.loads((out / "a.json").read_text())["weights_details"]
    assert details == {"score": 0.5, "output_score": 0.25}
    # A failing rescoring loses nothing: the output stays and the sidecar says why.
    details = json.loads((out / "b.json").read_text())["weights_details"]
    assert details == {
        "score": 0.5,
        "output_score": None,
        "output_score_error": "ValueError: cannot score (simulated)",
    }
    assert (out / "b.png").is_file()


def test_invalid_weights_from_a_chooser_fail_that_image_only(tmp_path):
    _png(tmp_path / "a.png", _rgb())
    bad = unires.fixed_weights({"SR": 0.5}, "test")
    report, errors, _ = _restore([tmp_path / "a.png"], tmp_path / "out", chooser=bad)
    assert report.failed and "WeightError" in errors and "sum to 1" in errors


@pytest.mark.parametrize(
    "options, message",
    [
        ({"strength": 2}, r"does not take strength \(--strength\)"),
        ({"weights": "DN=1", "preset": "average"}, "one of weights, preset and search"),
        ({"weights": "DN"}, "expected NAME=VALUE"),
        ({"preset": "best"}, "unknown preset 'best'"),
        ({"budget": 10}, r"budget apply only with a weight search"),
        ({"search": "grid"}, "unknown search strategy 'grid'"),
        ({"search": "refine", "quality": "nope"}, "unknown quality model 'nope'"),
        ({"ensemble": 3}, "ensemble=3"),
        ({"color_fix": "sepia"}, "sepia"),
    ],
)
def test_bad_options_are_refused_before_any_weights_are_read(
    options, message, monkeypatch
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(unires.Restorer, "load", no_model)
    with pytest.raises(restore.OptionError, match=message):
        restore.load(None, **options)


def test_the_public_api_imports_and_load_is_the_embedded_default():
    from unires_jax.restore import ImageRestorer, Restorer, load

    restorer = load()
    assert isinstance(restorer, ImageRestorer) and restorer.family == "unires"
    assert isinstance(restorer.restorer, Restorer)
    assert restorer.describe()["checkpoint"] == "embedded default"
