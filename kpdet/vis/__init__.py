"""Drawing for TensorBoard and inference: keypoints, skeletons, heatmap overlays."""

from kpdet.vis.draw import denormalize, draw_keypoints, heatmap_overlay, prediction_panel
from kpdet.vis.ordinal import distribution_strips

__all__ = ["denormalize", "distribution_strips", "draw_keypoints", "heatmap_overlay", "prediction_panel"]
