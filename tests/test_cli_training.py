"""The training and compression flags as the build receives them (edgeopt/cli_training.py)."""

from __future__ import annotations

from edgeopt.cli_training import FINE_TUNE_RATE, REFIT_FINE_TUNE_RATE, compression_requests, training_configs


def _requests(no_refit: bool = False, depthwise: bool = False, no_augment: bool = False,
              allocation: str = "uniform") -> list[tuple[str, dict]]:
    return compression_requests(prune=0.5, prune_scope="layer", prune_exclude=None, prune_channels=0.3,
                                prune_allocation=allocation, prune_importance="l2", no_refit=no_refit, lowrank=None, lowrank_rank=None,
                                depthwise=depthwise, no_augment=no_augment)


def _fine_tuning_rate(requests: list[tuple[str, dict]], rate: float | None = None) -> float:
    _, fine_tuning = training_configs(False, requests, False, None, None, None, rate, 16, 0, False)
    return fine_tuning.learning_rate


def test_every_pass_refits_unless_told_not_to():
    assert [options["refit"] for _, options in _requests(depthwise=True)] == [True, True, True]
    assert [options["refit"] for _, options in _requests(depthwise=True, no_refit=True)] == [False, False, False]


def test_fine_tuning_takes_smaller_steps_when_every_pass_refit():
    assert _fine_tuning_rate(_requests()) == REFIT_FINE_TUNE_RATE == 1e-3
    assert _fine_tuning_rate(_requests(no_refit=True)) == FINE_TUNE_RATE == 1e-2
    assert _fine_tuning_rate(_requests(depthwise=True)) == REFIT_FINE_TUNE_RATE  # a rewrite's chain refit too
    assert _fine_tuning_rate(_requests(), rate=5e-3) == 5e-3  # --train-rate wins


def test_no_augment_also_keeps_mirror_images_out_of_refit_with_or_without_fine_tuning():
    assert [options["mirror"] for _, options in _requests(depthwise=True)] == [True, True, True]
    requests = _requests(depthwise=True, no_augment=True)
    assert [options["mirror"] for _, options in requests] == [False, False, False]
    assert training_configs(False, requests, True, None, None, None, None, 16, 0, True) == (None, None)
    _, fine_tuning = training_configs(False, requests, False, None, None, None, None, 16, 0, True)
    assert not fine_tuning.augment


def test_prune_allocation_sets_the_shares_of_both_prunings():
    requests = dict(_requests(allocation="sensitivity"))
    assert requests["prune"]["allocation"] == requests["prune-channels"]["allocation"] == "sensitivity"
