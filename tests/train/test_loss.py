"""Distillation losses: zero when the student matches, KL for logits, scale-free MSE otherwise."""

import numpy as np
import tensorflow as tf

from edgeopt.train.loss import TEMPERATURE, distillation_loss


def test_a_student_equal_to_its_teacher_has_no_loss():
    logits, features = np.random.default_rng(0).standard_normal((4, 10)), np.ones((4, 3, 5, 5))
    loss = distillation_loss([tf.constant(logits), tf.constant(features)], [tf.constant(logits), tf.constant(features)])
    assert abs(float(loss)) < 1e-6


def test_logits_give_the_softened_kl_and_other_outputs_a_relative_error():
    teacher, student = np.array([[2.0, 0.0]]), np.array([[0.0, 0.0]])
    p = np.exp(teacher / TEMPERATURE) / np.exp(teacher / TEMPERATURE).sum()
    expected = float((p * np.log(p / 0.5)).sum() * TEMPERATURE ** 2)
    assert abs(float(distillation_loss([tf.constant(student)], [tf.constant(teacher)])) - expected) < 1e-5
    # a feature map 10x larger with the same relative error weighs the same
    small = float(distillation_loss([tf.constant(np.full((1, 4, 2, 2), 1.1))], [tf.constant(np.ones((1, 4, 2, 2)))]))
    large = float(distillation_loss([tf.constant(np.full((1, 4, 2, 2), 11.0))], [tf.constant(np.full((1, 4, 2, 2), 10.0))]))
    assert abs(small - 0.01) < 1e-6 and abs(large - small) < 1e-6


def test_labels_add_cross_entropy():
    logits = tf.constant([[3.0, 0.0]])
    without = float(distillation_loss([logits], [logits]))
    with_labels = float(distillation_loss([logits], [logits], tf.constant([1])))
    assert abs(with_labels - without - (np.log(1 + np.exp(3.0)))) < 1e-5
