"""Why a heatmap loss starts slowly: gradient and output statistics over the first training steps.

For each recorded step (the batch of that step, before the optimizer moves):
- `grad_backbone`: L2 norm of the loss gradient over the backbone's parameters;
- where the gradient d loss / d logit lands, as shares of its absolute mass over the
  weighted channels: `grad_pos` (target == 1), `grad_near` (0 < target < 1, the Gaussian
  neighbourhood) and `grad_far` (target == 0, the far background);
- the head output as scores (the loss's activation): `score_mean`, `score_spread` (std over
  the pixels of a channel, averaged over channels), `contrast` (score at the target's peak
  pixel minus the mean score of the far background) and `separation` (a channel's score at its
  own keypoint minus its score at the other keypoints of the same instance: near 0 when every
  channel fires on the same parts, i.e. the keypoints are found but not told apart).
"""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from kpdet.data.device_augment import augment_batch
from kpdet.engine import distributed
from kpdet.engine.runner import build_components, seed_everything, step_options
from kpdet.engine.train import encode_targets
from kpdet.predict import apply_activation


def gradient_split(grad: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> dict[str, float]:
    """Shares of sum |grad| [B, K, H, W] on positives, the Gaussian neighbourhood and the background
    of the channels with weight > 0 ([B, K])."""
    used = (weights > 0)[..., None, None].expand_as(grad)
    mass = grad.abs() * used
    total = mass.sum().clamp_min(1e-30)
    pos, far = targets == 1, targets == 0
    near = ~pos & ~far
    return {"grad_pos": float(mass[pos].sum() / total), "grad_near": float(mass[near].sum() / total),
            "grad_far": float(mass[far].sum() / total)}


def output_stats(scores: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> dict[str, float]:
    """Mean, spatial spread and peak-to-background contrast of scores [B, K, H, W] over weighted channels."""
    used = weights > 0
    if not used.any():
        return {"score_mean": float("nan"), "score_spread": float("nan"), "contrast": float("nan")}
    s, t = scores[used].flatten(1), targets[used].flatten(1)  # [N, HW]
    peak = s.gather(1, t.argmax(1, keepdim=True)).squeeze(1)
    far = t == 0
    background = (s * far).sum(1) / far.sum(1).clamp_min(1)
    return {"score_mean": float(s.mean()), "score_spread": float(s.std(1).mean()),
            "contrast": float((peak - background).mean())}


def channel_separation(scores: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> float:
    """Mean over instances b and ordered pairs k != j of weighted keypoints of
    s[b, k](peak of target[b, k]) - s[b, k](peak of target[b, j]); NaN without such a pair."""
    b, k = scores.shape[:2]
    peaks = targets.flatten(2).argmax(2)  # [B, K] pixel index of each keypoint's target peak
    s = scores.flatten(2)
    at = s.gather(2, peaks[:, None, :].expand(b, k, k))  # at[b, k, j] = s[b, k] at keypoint j's peak
    own = at.diagonal(dim1=1, dim2=2)  # [B, K]
    used = weights > 0
    pair = used[:, :, None] & used[:, None, :] & ~torch.eye(k, dtype=torch.bool, device=scores.device)
    if not pair.any():
        return float("nan")
    return float((own[:, :, None] - at)[pair].mean())


def diagnose(cfg: DictConfig, steps: int, every: int = 1) -> list[dict[str, float]]:
    """Train `steps` optimizer steps per `cfg` (no validation, nothing written) and return the
    statistics of steps 0, every, 2 * every, ... (step 0 = the initialisation). With
    model.attribute, the steps train the keypoint loss alone (the statistics are the heatmaps')."""
    seed_everything(cfg.seed)
    c = build_components(cfg)
    model, options = distributed.unwrap(c.model), step_options(cfg)
    rows, step, epoch = [], 0, 0
    while step < steps:
        c.train_loader.sampler.set_epoch(epoch)
        for batch in c.train_loader:
            if step >= steps:
                break
            record = step % every == 0
            row = _step(model, c, batch, options.grad_clip, record)
            if record:
                rows.append({"step": step, **row})
            step += 1
        epoch += 1
    return rows


def _heatmap_targets(targets):
    """The heatmaps [B, C, h, w] of nested targets: (heatmaps, offsets, mask) with model.offset,
    ((...), displacements, mask) for bottom-up pose; the heatmap logits are the first C channels."""
    while isinstance(targets, tuple):
        targets = targets[0]
    return targets


def _step(model, c, batch: dict, grad_clip: float | None, record: bool) -> dict[str, float]:
    model.train()
    if "canvas_to_crop" in batch:  # data.augment_on=device
        batch = augment_batch(batch, c.device)
    images = batch["image"].to(c.device)
    targets, weights = encode_targets(c.codec, batch, c.device)
    logits = model(images)
    logits.retain_grad()
    loss = getattr(c.loss_fn, "keypoint", c.loss_fn)(logits, targets, weights)  # model.attribute: left out
    loss.backward()
    row = {"loss": float(loss.detach())}
    if record:
        row["grad_backbone"] = float(torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in model.backbone.parameters() if p.grad is not None])))
        heat = _heatmap_targets(targets)  # offsets and displacements (bottom-up) are left out
        C = heat.shape[1]
        row.update(gradient_split(logits.grad[:, :C], heat, weights))
        scores = apply_activation(logits.detach().float()[:, :C], c.loss_fn.activation)
        row.update(output_stats(scores, heat, weights))
        row["separation"] = channel_separation(scores, heat, weights)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    c.optimizer.step()
    c.optimizer.zero_grad(set_to_none=True)
    c.scheduler.step()
    return row
