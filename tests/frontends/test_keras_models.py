"""Keras 3 `.keras`, legacy `.h5` and SavedModel directories through tf2onnx."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import ModelError, UsageError
from edgeopt.frontends import FrontendOptions, load_model
from edgeopt.ir import input_specs, ort_session

keras = pytest.importorskip("keras")
SHAPE = (1, 8, 8, 3)


@pytest.fixture(scope="module")
def keras_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE[1:], name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    outputs = keras.layers.Dense(5)(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def check(loaded, model, x):
    assert input_specs(loaded.model)[0].shape == SHAPE
    out = ort_session(loaded.model).run(None, {"image": x})[0]
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loaded.reference({"image": x})[0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_file(tmp_path, keras_model, x, suffix):
    path = tmp_path / f"net{suffix}"
    keras_model.save(path)
    with pytest.raises(UsageError, match=r"image \[\?,8,8,3\]"):
        load_model(path)
    loaded = load_model(path, FrontendOptions(input_shapes={"image": SHAPE}))
    assert loaded.format == "keras"
    check(loaded, keras_model, x)


def test_saved_model_dir(tmp_path, keras_model, x):
    keras_model.export(tmp_path / "saved", verbose=False)
    loaded = load_model(tmp_path / "saved", FrontendOptions(input_shapes={"": SHAPE}))
    assert loaded.format == "saved-model"
    check(loaded, keras_model, x)


def test_corrupt_keras(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable Keras model"):
        load_model(path)


def test_directory_without_saved_model(tmp_path):
    with pytest.raises(ModelError, match="without saved_model.pb"):
        load_model(tmp_path)


def preprocessing_net():
    """Rescaling then Normalization with given statistics: Keras 3 holds the mean and
    variance as eager tensors, which a trace captures as extra placeholders."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE[1:], name="image")
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051])(h)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inputs, outputs)


def efficientnet_v2():
    """EfficientNetV2B0 with its built-in preprocessing, at 64x64 to stay fast; logits
    rather than softmax so the comparison sees more than near-uniform probabilities."""
    keras.utils.set_random_seed(0)
    return keras.applications.EfficientNetV2B0(weights=None, input_shape=(64, 64, 3), classifier_activation=None)


@pytest.mark.parametrize("factory", [preprocessing_net, efficientnet_v2])
def test_preprocessing_constants_are_initializers(tmp_path, factory):
    model = factory()
    path = tmp_path / "net.keras"
    model.save(path)
    shape = (1, *model.inputs[0].shape[1:])
    loaded = load_model(path, FrontendOptions(input_shapes={"": shape}))
    specs = input_specs(loaded.model)
    assert [s.shape for s in specs] == [shape]  # the image only: no Normalization constants
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    out = ort_session(loaded.model).run(None, {specs[0].name: x})[0]
    np.testing.assert_allclose(out, np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-4)
