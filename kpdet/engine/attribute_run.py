"""The learned ground distance in a run (model.attribute.ground_distance=learned): the
GroundDistanceLearner's epoch end with its TensorBoard scalar and image, and its validation
metrics. Without a learner (every other config) both do nothing."""
from __future__ import annotations

from kpdet.engine import distributed
from kpdet.metrics import ground_distance_spearman
from kpdet.vis.matrix import matrix_picture


def end_epoch(loss_fn, val_set, logger, step: int) -> None:
    """Close the learner's epoch (new matrix; the EMD weight after the warm-up); TensorBoard
    `ground_distance/weight` and the image `ground_distance/matrix`."""
    learner = getattr(loss_fn, "learner", None)
    if learner is None:
        return
    learner.end_epoch()
    logger.scalars(step, {"ground_distance/weight": learner.weight})
    if learner.matrix is not None and distributed.is_main():
        logger.image("ground_distance/matrix", step, matrix_picture(
            learner.matrix, class_labels(val_set), f"learned ground distance, epoch {learner.epoch}"))


def class_labels(dataset) -> list[str] | None:
    """Axis labels of the model's classes: "2 (true 0)" when class_permutation relabelled them."""
    permutation = getattr(dataset, "attribute_permutation", None)
    if permutation is None:
        return None
    true = {model_class: c for c, model_class in enumerate(permutation)}
    return [f"{k} (true {true[k]})" for k in range(len(permutation))]


def ground_distance_metrics(loss_fn, val_set) -> dict[str, float]:
    """With a learned matrix: `ground_distance_spearman`, its Spearman correlation with |i - j| in
    the true class order (the annotation field's order, mapped through class_permutation), and
    `centroid_distance_spearman`, that of the centroid distances it was made from."""
    learner = getattr(loss_fn, "learner", None)
    if learner is None or learner.matrix is None:
        return {}
    permutation = getattr(val_set, "attribute_permutation", None)
    return {"ground_distance_spearman": ground_distance_spearman(learner.matrix, permutation),
            "centroid_distance_spearman": ground_distance_spearman(learner.distances, permutation)}
