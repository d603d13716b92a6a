"""The model zoo of `make bench` (bench_zoo.py): architectures no one here wrote, built from
their published configs with random weights, offline.

Each entry writes the model file a user would hand to edgeopt (`.pt2` for Hugging Face
`transformers` nets, `.keras` for `tf.keras.applications`) plus calibration and evaluation
data. Random conv nets blow up or die out layer by layer, so torch nets get their
BatchNorm statistics re-estimated on photo crops (as a trained net would have them);
text encoders get random token ids with a padding mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench_imagenet import photo_crops, torchvision_normalise

SEQUENCE = 64  # token ids per text sample
BN_SAMPLES = 32


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str  # convnet, mobile, vit, hybrid, text
    source: str  # transformers, keras
    make: Callable[[], object]  # the model object, random weights
    side: int = 224
    vocab: int = 0  # text models: token id range

    @property
    def convnet(self) -> bool:
        return self.family in ("convnet", "mobile")


def _hf(config_name: str, model_name: str, **config):
    def make():
        import transformers

        model = getattr(transformers, model_name)(getattr(transformers, config_name)(**config))
        return model.eval()
    return make


def _keras(name: str, **kwargs):
    def make():
        import tf_keras  # noqa: F401  (keras.applications is Keras 3 here; both save .keras)
        import keras

        keras.utils.set_random_seed(0)  # logits: a random net's softmax is flat, so int8 rounds it all alike
        return getattr(keras.applications, name)(weights=None, classifier_activation=None, **kwargs)
    return make


def _reestimate_keras_batchnorm(model, images: np.ndarray) -> None:
    """Keras BatchNorm statistics from one training-mode pass over photo crops (momentum 0:
    the moving statistics become that batch's), as a trained net would have them."""
    import keras

    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)


BERT_SMALL = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, vocab_size=8192)
ZOO = (
    ZooModel("resnet18", "convnet", "transformers", _hf("ResNetConfig", "ResNetForImageClassification",
             layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64)),
    ZooModel("resnet50", "convnet", "transformers", _hf("ResNetConfig", "ResNetForImageClassification")),
    ZooModel("regnety-400mf", "convnet", "transformers", _hf("RegNetConfig", "RegNetForImageClassification",
             depths=[1, 3, 6, 6], hidden_sizes=[48, 104, 208, 440], groups_width=8, layer_type="y")),
    ZooModel("efficientnet-b0", "convnet", "transformers", _hf("EfficientNetConfig", "EfficientNetForImageClassification",
             width_coefficient=1.0, depth_coefficient=1.0, image_size=224, hidden_dim=1280, dropout_rate=0.2)),
    ZooModel("convnext-atto", "convnet", "transformers", _hf("ConvNextConfig", "ConvNextForImageClassification",
             depths=[2, 2, 6, 2], hidden_sizes=[40, 80, 160, 320])),
    ZooModel("convnextv2-atto", "convnet", "transformers", _hf("ConvNextV2Config", "ConvNextV2ForImageClassification",
             depths=[2, 2, 6, 2], hidden_sizes=[40, 80, 160, 320])),
    ZooModel("mobilenet-v1", "mobile", "transformers", _hf("MobileNetV1Config", "MobileNetV1ForImageClassification")),
    ZooModel("mobilenet-v2", "mobile", "transformers", _hf("MobileNetV2Config", "MobileNetV2ForImageClassification")),
    ZooModel("mobilevit-s", "hybrid", "transformers", _hf("MobileViTConfig", "MobileViTForImageClassification"), side=256),
    ZooModel("mobilevitv2", "hybrid", "transformers", _hf("MobileViTV2Config", "MobileViTV2ForImageClassification"),
             side=256),
    ZooModel("levit-128s", "hybrid", "transformers", _hf("LevitConfig", "LevitForImageClassification")),
    ZooModel("segformer-b0", "hybrid", "transformers", _hf("SegformerConfig", "SegformerForImageClassification")),
    ZooModel("poolformer-s12", "hybrid", "transformers", _hf("PoolFormerConfig", "PoolFormerForImageClassification")),
    ZooModel("vit-tiny", "vit", "transformers", _hf("ViTConfig", "ViTForImageClassification", hidden_size=192,
             num_attention_heads=3, intermediate_size=768)),
    ZooModel("deit-tiny", "vit", "transformers", _hf("DeiTConfig", "DeiTForImageClassification", hidden_size=192,
             num_attention_heads=3, intermediate_size=768)),
    ZooModel("swin-mini", "vit", "transformers", _hf("SwinConfig", "SwinForImageClassification", embed_dim=48,
             depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16])),
    ZooModel("bert-mini", "text", "transformers", _hf("BertConfig", "BertForSequenceClassification", **BERT_SMALL),
             vocab=8192),
    ZooModel("distilbert-small", "text", "transformers", _hf("DistilBertConfig", "DistilBertForSequenceClassification",
             dim=256, n_layers=4, n_heads=4, hidden_dim=1024, vocab_size=8192), vocab=8192),
    ZooModel("mobilebert-6", "text", "transformers", _hf("MobileBertConfig", "MobileBertForSequenceClassification",
             num_hidden_layers=6, vocab_size=8192), vocab=8192),
    ZooModel("keras-mobilenet", "mobile", "keras", _keras("MobileNet")),
    ZooModel("keras-mobilenetv2", "mobile", "keras", _keras("MobileNetV2")),
    ZooModel("keras-mobilenetv3small", "mobile", "keras", _keras("MobileNetV3Small")),
    ZooModel("keras-mobilenetv3large", "mobile", "keras", _keras("MobileNetV3Large")),
    ZooModel("keras-efficientnetb0", "convnet", "keras", _keras("EfficientNetB0")),
    ZooModel("keras-efficientnetv2b0", "convnet", "keras", _keras("EfficientNetV2B0")),
    ZooModel("keras-resnet50", "convnet", "keras", _keras("ResNet50")),
    ZooModel("keras-densenet121", "convnet", "keras", _keras("DenseNet121")),
    ZooModel("keras-nasnetmobile", "mobile", "keras", _keras("NASNetMobile")),
)


def _logits(model, text: bool):
    """The transformers model with named tensor inputs, returning the logits tensor alone."""
    import torch

    class ImageLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, image):
            return self.model(image).logits

    class TextLogits(ImageLogits):
        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return (TextLogits if text else ImageLogits)().eval()


def _reestimate_batchnorm(model, images: np.ndarray) -> None:
    """Running BN statistics from photo crops: a cumulative average over one pass.

    The affine part is reset to the identity too (torch's own BatchNorm init): transformers'
    EfficientNet draws BN weights from N(0, 0.02) like a Linear's, so each of its ~50 BNs
    scaled the signal by ~0.02 and the logits came out near 1e-30 (all zero in int8: 0 dB,
    top-1 a coin toss), whatever the statistics. ResNet and RegNet already start at 1 and 0.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_parameters()  # running statistics, and weight 1, bias 0
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(images), 8):
            model(torch.from_numpy(images[i:i + 8]))
    model.eval()


def _image_data(entry: ZooModel, count: int, seed: int, nhwc: bool) -> np.ndarray:
    crops = photo_crops(count, seed, torchvision_normalise)
    if entry.side != crops.shape[-1]:
        import torch

        crops = torch.nn.functional.interpolate(torch.from_numpy(crops), size=(entry.side, entry.side),
                                                mode="bilinear").numpy()
    if nhwc:  # keras.applications take 0..255 pixels, channels last, and normalise inside
        crops = (crops.transpose(0, 2, 3, 1) * 0.226 + 0.449) * 255
    return crops.astype(np.float32)


def _text_data(entry: ZooModel, count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, entry.vocab, size=(count, SEQUENCE), dtype=np.int64)
    lengths = rng.integers(SEQUENCE // 4, SEQUENCE + 1, size=count)
    mask = (np.arange(SEQUENCE)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


def write_model(entry: ZooModel, work: Path, calib: int, evaluation: int) -> tuple[Path, Path, Path]:
    """(model file, calib.npz, eval.npz) for one zoo entry under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    model = entry.make()
    if entry.family == "text":
        data = [_text_data(entry, n, seed) for n, seed in ((calib, 1), (evaluation, 2))]
    else:
        nhwc = entry.source == "keras"
        data = [{"image": _image_data(entry, n, seed, nhwc)} for n, seed in ((calib, 1), (evaluation, 2))]
    paths = [work / "calib.npz", work / "eval.npz"]
    if entry.source == "keras":
        _reestimate_keras_batchnorm(model, _image_data(entry, BN_SAMPLES, 3, nhwc=True))
        path = work / f"{entry.name}.keras"
        model.save(path)
        data = [{model.inputs[0].name: d["image"]} for d in data]
    else:
        import torch

        torch.manual_seed(0)
        module = _logits(model, entry.family == "text")
        if entry.family != "text":
            _reestimate_batchnorm(module, _image_data(entry, BN_SAMPLES, 3, nhwc=False))
        example = tuple(torch.from_numpy(v[:1]) for v in data[0].values())
        path = work / f"{entry.name}.pt2"
        torch.export.save(torch.export.export(module, example), path)
    for target, arrays in zip(paths, data):
        np.savez(target, **arrays)
    return path, paths[0], paths[1]


ROUNDING_NOISE = 1e-7  # relative, about float32's rounding step (2^-24 = 6e-8)


def conditioning_db(model_path: Path, evaluation: Path, draws: int = 3) -> float | None:
    """SQNR of the source model against itself on its evaluation images moved by float32
    rounding noise (the worst of a few draws): no float32 build can be expected to agree
    with the source better than this. Random LeViT is the case in point: on one contrasty
    crop its attention saturates, and the source itself moves to ~10 dB. None for text
    models (integer inputs)."""
    data = np.load(evaluation)
    if len(data.files) != 1 or data[data.files[0]].dtype.kind != "f":
        return None
    images = data[data.files[0]]
    rng = np.random.default_rng(0)
    inputs = [images] + [images * (1 + ROUNDING_NOISE * rng.standard_normal(images.shape)).astype(np.float32)
                         for _ in range(draws)]
    if model_path.suffix == ".keras":
        import keras

        model = keras.models.load_model(model_path)
        outputs = [np.asarray(model(x, training=False), np.float64) for x in inputs]
    else:
        import torch

        module = torch.export.load(model_path).module()  # exported for a batch of one
        with torch.no_grad():
            outputs = [np.concatenate([module(torch.from_numpy(s[None])).numpy() for s in x]).astype(np.float64)
                       for x in inputs]
    clean = outputs[0]
    return min(float(10 * np.log10(np.sum(clean ** 2) / max(np.sum((clean - moved) ** 2), 1e-300)))
               for moved in outputs[1:])


def main() -> None:
    """`python zoo_models.py NAME DIR`: write one net and its data under DIR, then print (last
    line, JSON) the paths and its conditioning. bench_zoo runs it as a child process, so that
    building and running the source nets never grows the benchmark's own process."""
    import json
    import sys

    name, work = sys.argv[1], Path(sys.argv[2])
    entry = next(e for e in ZOO if e.name == name)
    model, calib, evaluation = write_model(entry, work, int(sys.argv[3]), int(sys.argv[4]))
    print(json.dumps({"model": str(model), "calib": str(calib), "eval": str(evaluation),
                      "conditioning_db": conditioning_db(model, evaluation)}))


if __name__ == "__main__":
    main()
