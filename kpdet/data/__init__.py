"""COCO keypoints data: reading and validating files, top-down crops with augmentation."""
from kpdet.data.coco import DatasetError, load_coco_keypoints, read_image
from kpdet.data.dataset import TopDownDataset, build_dataset

__all__ = ["DatasetError", "TopDownDataset", "build_dataset", "load_coco_keypoints", "read_image"]
