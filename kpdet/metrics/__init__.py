"""Evaluation metrics: pure functions of arrays (numpy or torch) and COCO files.

- coco: OKS AP/AR via pycocotools (`coco_keypoint_eval`), `instance_score`.
- distance: PCK, EPE, DeepLabCut's RMSE, per-keypoint tables, text tables.
- confidence: presence AUROC (labelled vs unlabelled keypoints) and ECE (calibration).
- landmark: NME, AUC, failure rate (300W / WFLW conventions).
- attribute: mean absolute class error and accuracy of a per-instance ordinal attribute.
"""
from kpdet.metrics.attribute import attribute_metrics, ground_distance_spearman
from kpdet.metrics.coco import COCO_KEYS, coco_keypoint_eval, instance_score
from kpdet.metrics.confidence import (
    ECE_BINS,
    auroc,
    confidence_metrics,
    expected_calibration_error,
    presence_auroc,
)
from kpdet.metrics.distance import (
    DEFAULT_PCK_THRESHOLDS,
    bbox_longer_side,
    distance_metrics,
    epe,
    format_rows,
    format_table,
    pck,
    pck_hits,
    pck_per_keypoint,
    per_keypoint_table,
    rmse_px,
)
from kpdet.metrics.landmark import (
    DEFAULT_NME_THRESHOLDS,
    W300_OUTER_EYE_CORNERS,
    WFLW_OUTER_EYE_CORNERS,
    box_norm,
    failure_rate,
    interocular_norm,
    landmark_box,
    landmark_metrics,
    nme,
    nme_auc,
)

__all__ = [
    "COCO_KEYS", "DEFAULT_NME_THRESHOLDS", "DEFAULT_PCK_THRESHOLDS", "ECE_BINS", "W300_OUTER_EYE_CORNERS",
    "WFLW_OUTER_EYE_CORNERS", "attribute_metrics", "auroc", "bbox_longer_side", "box_norm",
    "coco_keypoint_eval", "confidence_metrics", "distance_metrics", "epe", "expected_calibration_error",
    "failure_rate", "format_rows", "format_table", "ground_distance_spearman", "instance_score",
    "interocular_norm", "landmark_box",
    "landmark_metrics", "nme", "nme_auc", "pck", "pck_hits", "pck_per_keypoint", "per_keypoint_table",
    "presence_auroc", "rmse_px",
]
