"""The evaluator CNN: a small classifier trained on real data; its penultimate layer gives the
features for Frechet distance and diversity, its logits the conditional accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from genline.model import CheckpointError, read_checkpoint


def downsamplings(image_size: int) -> int:
    """Stride-2 stages that bring `image_size` down to 8 or less (0 for 8x8 images)."""
    n = 0
    while image_size > 8:
        image_size, n = (image_size + 1) // 2, n + 1
    return n


class Evaluator(nn.Module):
    """Small CNN: image (B, C, H, W) -> (logits (B, K), features (B, F)).

    Two 3x3 convolutions, then one stride-2 stage per halving down to 8x8 (none for 8x8
    images, two for 32x32): the receptive field grows with the image instead of staying 5x5.
    Sizes that are not 8 * 2^k are resized to the next one first (24x24 -> 32x32).
    """

    feature_dim = 128

    def __init__(self, num_classes: int, channels: int = 1, image_size: int = 8) -> None:
        super().__init__()
        self.num_classes, self.channels, self.image_size = num_classes, channels, image_size
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )
        # the size the convolutions see: 8 * 2^k, so that the stride-2 stages end at exactly 8x8
        # and the 4x4 pool divides it (ONNX exports only exact adaptive pooling); other sizes
        # (24x24, 20x20) are resized to it first
        self.work_size = 8 * 2 ** downsamplings(image_size)
        self.down = nn.Sequential(*(layer for _ in range(downsamplings(image_size)) for layer in (
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU())))
        self.pool = nn.AvgPool2d(2)  # (B, 64, 8, 8) -> (B, 64, 4, 4)
        self.fc = nn.Linear(64 * 16, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.drop = nn.Dropout(0.2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-1] != self.work_size or image.shape[-2] != self.work_size:
            image = F.interpolate(image, size=(self.work_size, self.work_size), mode="bilinear",
                                  align_corners=False)
        h = self.pool(self.down(self.conv(image)))
        feats = F.relu(self.fc(h.flatten(1)))  # (B, F)
        return self.head(self.drop(feats)), feats

    def args(self) -> dict[str, int]:
        return {"num_classes": self.num_classes, "channels": self.channels,
                "image_size": self.image_size}


def load_evaluator(path: str | Path) -> tuple[Evaluator, dict[str, Any]]:
    """Rebuild the evaluator CNN from its checkpoint (weights_only, like load_generator)."""
    ckpt = read_checkpoint(path)
    try:
        model = Evaluator(**ckpt["model_args"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not an evaluator checkpoint ({str(exc)[:300]})") from exc
    model.eval()
    return model, ckpt
