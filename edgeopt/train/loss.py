"""Distillation losses: the student (the model being trained) against the float teacher's
outputs, no labels needed; cross-entropy added when labels are given."""

from __future__ import annotations

import tensorflow as tf

TEMPERATURE = 2.0  # softens classifier logits (Hinton et al. 2015); the loss is scaled by T^2


def is_classifier(shape) -> bool:
    """[batch, classes] logits."""
    return len(shape) == 2 and shape[-1] > 1


def distillation_loss(student: list[tf.Tensor], teacher: list[tf.Tensor], labels: tf.Tensor | None = None) -> tf.Tensor:
    """Mean over outputs: KL(teacher || student) at TEMPERATURE for classifier logits, else the
    squared error relative to the teacher's mean square (so outputs of any scale weigh alike);
    plus cross-entropy with `labels` on the first classifier output."""
    terms = []
    for s, t in zip(student, teacher):
        s, t = tf.cast(s, tf.float32), tf.cast(t, tf.float32)
        if is_classifier(s.shape):
            soft = tf.nn.softmax(t / TEMPERATURE)
            log_student = tf.nn.log_softmax(s / TEMPERATURE)
            kl = tf.reduce_sum(soft * (tf.math.log(soft + 1e-12) - log_student), axis=-1)
            terms.append(tf.reduce_mean(kl) * TEMPERATURE ** 2)
        else:
            terms.append(tf.reduce_mean(tf.square(s - t)) / (tf.reduce_mean(tf.square(t)) + 1e-12))
    loss = tf.add_n(terms) / len(terms)
    if labels is not None:
        logits = next(s for s in student if is_classifier(s.shape))
        loss += tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits))
    return loss
