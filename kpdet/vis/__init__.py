"""Drawing for TensorBoard and inference: keypoints, skeletons, heatmap overlays."""

from kpdet.vis.draw import denormalize, draw_keypoints, heatmap_overlay, prediction_panel

__all__ = ["denormalize", "draw_keypoints", "heatmap_overlay", "prediction_panel"]
