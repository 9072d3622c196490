"""COCO keypoint AP/AR (OKS) through pycocotools, and MMPose-style instance rescoring.

OKS between a prediction and a ground-truth instance of area s (gt "area") over its
labelled keypoints (v > 0), with d_k the distance in image px:
    OKS = mean_k exp(-d_k^2 / (2 * s * (2 * sigma_k)^2))
AP averages precision over OKS thresholds 0.50:0.05:0.95 (COCOeval, maxDets 20).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Sequence

import numpy as np

from kpdet.metrics.distance import as_numpy

COCO_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def instance_score(confidences, threshold: float = 0.2, box_scores=None) -> np.ndarray:
    """Instance score [N] from keypoint confidences [N, K] (MMPose top-down rescoring).

    score_n = mean of the confidences of instance n that are > threshold (0 when none
    is), times box_scores[n] when given (1 for ground-truth boxes). COCOeval ranks
    predictions by this score, so it matters for AP.
    """
    conf = as_numpy(confidences)
    above = conf > threshold
    count = above.sum(axis=1)
    score = np.where(count > 0, (conf * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    return score if box_scores is None else score * as_numpy(box_scores)


def _load_gt(gt):
    """COCO object from a COCO object or a path; fills keys COCOeval needs but files may lack.

    Missing "info"/"licenses" (older pycocotools' loadRes reads "info"), a missing
    "num_keypoints" (counted from v > 0) and a missing "area" (box w * h) get defaults.
    """
    from pycocotools.coco import COCO

    if isinstance(gt, (str, os.PathLike)):
        with open(gt) as f:
            dataset = json.load(f)
        coco = COCO()
        coco.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    else:
        coco = gt
    coco.dataset.setdefault("info", {})
    coco.dataset.setdefault("licenses", [])
    for ann in coco.dataset.get("annotations", []):
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int(np.count_nonzero(np.asarray(ann.get("keypoints", [0, 0, 0]))[2::3]))
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    return coco


def _clean_predictions(predictions: Sequence[dict], num_keypoints: int) -> list[dict]:
    """Plain-float copies with only the keys COCOeval reads (loadRes mutates its input).

    A "bbox" key is dropped so that loadRes takes its keypoint branch (area and box from
    the keypoints' extent) whatever the caller passed.
    """
    out = []
    for p in predictions:
        kpts = [float(v) for v in as_numpy(p["keypoints"]).reshape(-1)]
        if len(kpts) != 3 * num_keypoints:
            raise ValueError(f"prediction for image {p['image_id']} has {len(kpts) // 3} keypoints, "
                             f"sigmas have {num_keypoints}")
        out.append({"image_id": int(p["image_id"]), "category_id": int(p["category_id"]),
                    "keypoints": kpts, "score": float(p["score"])})
    return out


def _check_category(coco, cat_ids: Sequence[int], num_keypoints: int) -> None:
    for cat in coco.loadCats(list(cat_ids)):
        names = cat.get("keypoints")
        if names is not None and len(names) != num_keypoints:
            raise ValueError(f"category {cat['id']} ({cat.get('name')}) has {len(names)} keypoints, "
                             f"sigmas have {num_keypoints}")


def coco_keypoint_eval(gt, predictions: Sequence[dict], sigmas: Sequence[float],
                       image_ids: Sequence[int] | None = None) -> dict:
    """COCO keypoint AP/AR with pycocotools' COCOeval(iouType="keypoints"), prints silenced.

    gt: pycocotools COCO object or path to a COCO keypoints JSON.
    predictions: [{"image_id", "category_id", "keypoints": [x, y, score] * K, "score"}].
    sigmas: K OKS sigmas (any K; `params.kpt_oks_sigmas`).
    image_ids: images that were evaluated (default: those with a prediction); the
    evaluation is restricted to them and to the predictions' categories. Crowd and
    zero-keypoint ground truth are COCOeval's business (ignored regions).
    Returns {"AP", "AP50", "AP75", "APm", "APl", "AR", ...} as floats; all 0.0 when
    there is no prediction; -1.0 (COCOeval's value) for an area range without gt.
    """
    from pycocotools.cocoeval import COCOeval

    sigmas = np.asarray(sigmas, dtype=np.float64)
    dets = _clean_predictions(predictions, len(sigmas))
    if not dets:  # loadRes indexes anns[0]; nothing predicted scores nothing
        return {k: 0.0 for k in COCO_KEYS}
    coco = _load_gt(gt)
    cat_ids = sorted({d["category_id"] for d in dets})
    _check_category(coco, cat_ids, len(sigmas))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco.loadRes(copy.deepcopy(dets))
        evaluator = COCOeval(coco, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.params.catIds = cat_ids
        evaluator.params.imgIds = sorted({int(i) for i in image_ids} if image_ids is not None
                                         else {d["image_id"] for d in dets})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: float(v) for k, v in zip(COCO_KEYS, evaluator.stats)}
