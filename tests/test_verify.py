from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data import Dataset
from edgeopt.errors import AccuracyGateError, DataError
from edgeopt.verify import gate, measure, sqnr_db


def dataset(labels):
    x = np.eye(4, dtype=np.float32)  # sample i scores class i highest
    return Dataset({"x": x}, None if labels is None else np.array(labels), "test")


def identity(feeds):
    return [feeds["x"]]


def test_sqnr_known_value():
    ref = np.array([1.0, -1.0, 1.0, -1.0])
    assert sqnr_db(ref, ref + 0.1) == pytest.approx(20.0)  # signal 4, noise 0.04
    assert sqnr_db(ref, ref) == float("inf")


def test_measure_exact():
    f = measure(identity, identity, dataset([0, 1, 2, 3]), batch=1)
    assert (f.samples, f.top1_agreement, f.max_abs_error) == (4, 1.0, 0.0)
    assert f.reference_accuracy == f.artefact_accuracy == 1.0
    assert f.to_json()["sqnr_db"] is None


def test_measure_disagreement_and_gate():
    def flipped(feeds):
        out = feeds["x"].copy()
        if out[0, 3] == 1:  # the last sample now votes class 0
            out[0] = [2, 0, 0, 1]
        return [out]

    f = measure(identity, flipped, dataset([0, 1, 2, 3]), batch=1)
    assert f.top1_agreement == 0.75 and f.artefact_accuracy == 0.75 and f.max_abs_error == 2.0
    assert f.drop == ("label accuracy drop", 0.25)
    gate(f, 0.25)
    gate(f, None)
    with pytest.raises(AccuracyGateError) as info:
        gate(f, 0.01)
    assert info.value.exit_code == 6 and "25.00%" in info.value.message and "1.00%" in info.value.message


def test_drop_without_labels_uses_agreement():
    f = measure(identity, lambda feeds: [feeds["x"][:, ::-1]], dataset(None), batch=2)
    assert f.reference_accuracy is None
    assert f.drop == ("top-1 disagreement", 1.0)


def test_fewer_samples_than_a_batch_is_a_data_error():
    with pytest.raises(DataError, match="fewer than the model's batch size 8"):
        measure(identity, identity, dataset(None), batch=8)
