"""`edgeopt build`'s flags for training and compression: quantisation-aware training (--qat),
the compression passes (--prune ...), and the fine-tuning both share (--train-*)."""

from __future__ import annotations

import click

from edgeopt.errors import UsageError

FINE_TUNE_RATE = 1e-2  # compression fine-tuning: a share of each weight's mean magnitude per step, 100x QAT's:
# a rewritten model has more to win back than a quantised one (digits nets, measured)
REFIT_FINE_TUNE_RATE = 1e-3  # after a refit, which leaves the model close to where it was: on EfficientNet-Lite0
# (--prune 0.5, 5 minutes) 1e-2 took top-1 agreement from 74.7% down to 68.7%, 1e-3 up to 77.7%; the VGG digits
# net after --depthwise: int8 label accuracy 99.0-99.3% at 1e-3 and 1e-2, 98.0% at 3e-2 (two seeds each)


def training_options(command):
    """--qat, the compression passes, and the --train-* flags of their training."""
    for option in reversed((
        click.option("--qat", is_flag=True, help="int8 (tflite, coral): quantisation-aware training, distilled from "
                     "the float model on --train-data or --calib (no labels needed; labels y add cross-entropy)."),
        click.option("--prune", type=float, metavar="S", help="Unstructured magnitude pruning: share S (0..1) of each "
                     "layer's weights set to zero, then fine-tuned; the zeros shrink the gzipped bundle."),
        click.option("--prune-scope", type=click.Choice(["layer", "global"]), default="layer", show_default=True,
                     help="--prune: S per layer, or S of all pruned weights ranked together (by magnitude / layer RMS)."),
        click.option("--prune-exclude", metavar="NODES", help="--prune: comma-separated layer names kept dense "
                     "(default: the first and the last layer; 'none': prune them too)."),
        click.option("--prune-channels", type=float, metavar="R", help="Structured pruning: share R (0..1) of the "
                     "output channels of Conv/Gemm layers removed, with every consumer rewritten (residual and concat "
                     "channels pruned together), then fine-tuned: fewer MACs on every target."),
        click.option("--prune-allocation", type=click.Choice(["uniform", "sensitivity"]), default="uniform",
                     show_default=True, help="--prune and --prune-channels: the same share in every layer (group of tied "
                     "layers), or shares as measured on calibration data: as many zeros (MACs) as the share everywhere, "
                     "taken where the outputs suffer least."),
        click.option("--prune-importance", type=click.Choice(["l2", "l1", "activation"]),
                     help="--prune-channels: rank channels by their weights' L2 or L1 norm, or by what they carry to "
                     "the next layers on calibration data (their mean square there times the weights reading them; "
                     "the default with --calib/--train-data, l2 without)."),
        click.option("--no-refit", is_flag=True, help="Compression passes: do not refit the layers' weights to their "
                     "outputs before the pass on --calib/--train-data (least squares, layer by layer); --prune then "
                     "reaches its sparsity gradually while fine-tuning."),
        click.option("--lowrank", type=float, metavar="E", help="Low-rank factorisation keeping share E (0..1] of "
                     "each layer's singular-value energy: SVD for Gemm/MatMul/1x1, Tucker-2 or k x 1 + 1 x k for "
                     "k x k convs; only where MACs drop. Then fine-tuned."),
        click.option("--lowrank-rank", type=int, metavar="R", help="--lowrank with one rank R for every layer."),
        click.option("--depthwise", is_flag=True, help="Standard k x k convs become depthwise + pointwise "
                     "(best rank-1 start per input channel), then fine-tuned."),
        click.option("--no-fine-tune", is_flag=True, help="Compression without fine-tuning afterwards."),
        click.option("--train-data", metavar="DATA", help="--qat and fine-tuning: training samples (.npz or an image "
                     "folder; default: --calib). Never the --eval data."),
        click.option("--train-steps", type=int, metavar="N", help="Training: at most N steps per run (default: 10 "
                     "passes over the data)."),
        click.option("--train-time", type=float, metavar="S", help="Training: at most S seconds per run (default 300)."),
        click.option("--train-rate", type=float, metavar="LR", help="Training: Adam's step as a share of each "
                     "weight tensor's mean magnitude (default 1e-4 for --qat; for fine-tuning 1e-3 after refit, 1e-2 "
                     "otherwise)."),
        click.option("--train-batch", type=int, default=16, show_default=True, metavar="B", help="Training batch size."),
        click.option("--seed", type=int, default=0, show_default=True, help="Training: seed of batch order and "
                     "augmentation."),
        click.option("--no-augment", is_flag=True, help="Training: no image flips and shifts; refit: no mirror images."),
    )):
        command = option(command)
    return command


def compression_requests(prune, prune_scope, prune_exclude, prune_channels, prune_allocation, prune_importance,
                         no_refit, lowrank, lowrank_rank, depthwise, no_augment=False) -> list[tuple[str, dict]]:
    """The compression passes the flags ask for, as (pass name, options)."""
    refit = {"refit": not no_refit, "mirror": not no_augment}
    requests = [("depthwise", {**refit})] if depthwise else []
    if prune_channels is not None:
        requests.append(("prune-channels", {"ratio": prune_channels, "allocation": prune_allocation,
                                            "importance": prune_importance, **refit}))
    if lowrank is not None and lowrank_rank is not None:
        raise UsageError("--lowrank and --lowrank-rank both choose the ranks", hint="Give one of them.")
    if lowrank is not None or lowrank_rank is not None:
        requests.append(("lowrank", {"energy": lowrank, "rank": lowrank_rank, **refit}))
    if prune is not None:
        exclude = None if prune_exclude is None else [n.strip() for n in prune_exclude.split(",")
                                                      if n.strip() and n.strip().lower() != "none"]
        requests.append(("prune", {"sparsity": prune, "scope": prune_scope, "exclude": exclude,
                                   "allocation": prune_allocation, **refit}))
    elif prune_exclude is not None:
        raise UsageError("--prune-exclude is for --prune", hint="Add --prune S, or drop --prune-exclude.")
    if no_refit and not requests:
        raise UsageError("--no-refit is for the compression passes", hint="Add one of them, or drop --no-refit.")
    return requests


def fine_tune_rate(compression: list[tuple[str, dict]]) -> float:
    """The default fine-tuning rate: smaller when every pass refits (the model stays close)."""
    refits = all(options.get("refit") for _, options in compression)
    return REFIT_FINE_TUNE_RATE if refits else FINE_TUNE_RATE


def training_configs(qat: bool, compression: list[tuple[str, dict]], no_fine_tune: bool, train_data, steps, seconds,
                     rate, batch, seed, no_augment):
    """(--qat's TrainConfig or None, compression fine-tuning's TrainConfig or None)."""
    from edgeopt.train import TrainConfig

    compressing = bool(compression)
    if no_fine_tune and not compressing:
        raise UsageError("--no-fine-tune is for the compression passes", hint="Add --prune, or drop --no-fine-tune.")
    fine_tunes = compressing and not no_fine_tune
    if not (qat or fine_tunes):
        if train_data or steps is not None or seconds is not None or rate is not None or (no_augment and not compressing):
            raise UsageError("--train-* and --no-augment are for --qat and compression fine-tuning",
                             hint="Add --qat (int8 builds) or a compression pass such as --prune.")
        return None, None
    common = {"steps": steps, "seconds": seconds, "batch": batch, "seed": seed, "augment": not no_augment}
    qat_rate = {} if rate is None else {"learning_rate": rate}
    configs = (TrainConfig(**common, qat=True, **qat_rate) if qat else None,
               TrainConfig(**common, learning_rate=rate or fine_tune_rate(compression)) if fine_tunes else None)
    for config in configs:
        if config is not None:
            config.check()
    return configs
