"""Learned low-level task models: a small residual U-Net restorer and the degradation-aware controller.

* :class:`ResidualUNet` — two-level U-Net that predicts a residual added to its input (restore(x) = x + r(x)), so
  an untrained network is the identity. With ``cond_dim > 0`` every block is modulated by FiLM (per-channel scale
  and shift computed from a conditioning vector): the *universal* restorer, conditioned on the controller's
  embeddings. Images are tensors in [-1, 1], (B, 3, H, W), H and W multiples of 4 (padded by replication otherwise).
* :class:`DegradationController` — the DA-CLIP role, offline: a frozen EfficientNet-Lite0 (ImageNet weights from
  the installed package, :mod:`vlic.perception.effnet`) gives the 1280-d pooled feature plus the channel means of
  its first two stages (low-level statistics that ImageNet pooling washes out); a small trained MLP maps them to a
  *degradation embedding* (trained through a classification head over the degradation types — its accuracy is
  reported) and a *content embedding* (trained to predict the same frozen features of the **clean** image, the way
  DA-CLIP's controller predicts the clean image's CLIP embedding). Both embeddings condition the restorer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FiLMBlock(nn.Module):
    """conv → SiLU → conv, residual, with an optional FiLM (1 + scale, shift) from the conditioning vector."""

    def __init__(self, ch: int, cond_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * ch) if cond_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight), nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = F.silu(self.conv1(x))
        if self.film is not None:
            if cond is None:
                raise ValueError("this restorer is conditioned: pass the conditioning vector")
            scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.conv2(h)


class ResidualUNet(nn.Module):
    def __init__(self, width: int = 24, cond_dim: int = 0):
        super().__init__()
        self.width, self.cond_dim = width, cond_dim
        w1, w2 = width, 2 * width
        self.inp = nn.Conv2d(3, w1, 3, padding=1)
        self.enc1 = FiLMBlock(w1, cond_dim)
        self.down = nn.Conv2d(w1, w2, 4, stride=2, padding=1)
        self.enc2 = FiLMBlock(w2, cond_dim)
        self.down2 = nn.Conv2d(w2, w2, 4, stride=2, padding=1)
        self.mid = FiLMBlock(w2, cond_dim)
        self.up2 = nn.ConvTranspose2d(w2, w2, 4, stride=2, padding=1)
        self.dec2 = FiLMBlock(w2, cond_dim)
        self.up = nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1)
        self.dec1 = FiLMBlock(w1, cond_dim)
        self.out = nn.Conv2d(w1, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight), nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        H, W = x.shape[-2:]
        ph, pw = (-H) % 4, (-W) % 4
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        h1 = self.enc1(self.inp(xp), cond)
        h2 = self.enc2(self.down(F.silu(h1)), cond)
        m = self.mid(self.down2(F.silu(h2)), cond)
        d2 = self.dec2(self.up2(F.silu(m)) + h2, cond)
        d1 = self.dec1(self.up(F.silu(d2)) + h1, cond)
        return (xp + self.out(F.silu(d1)))[..., :H, :W]


DESCRIPTOR_DIM = 1280 + 2 * (16 + 24)


def effnet_descriptor(effnet, x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Frozen EfficientNet-Lite0 descriptor of images ``x`` in [-1, 1]: the 1280-d pooled feature, then the
    channel means and standard deviations of stages 1–2 (16 + 24 channels each) — (B, 1360). Everything is a
    spatial average, so crops and whole photos at the same scale give comparable descriptors; ``size``: resize
    (bilinear) to ``size``² first (None: native resolution). No gradient flows into the network."""
    y = ((x.clamp(-1, 1) + 1) / 2)
    if size is not None and (y.shape[-1] != size or y.shape[-2] != size):
        y = F.interpolate(y, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        s = effnet.stages(y)
        pooled = effnet.pooled(y)
    stats = [torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3))], dim=1) for f in s[:2]]
    return torch.cat([pooled, *stats], dim=1)


class DegradationController(nn.Module):
    """Descriptor (:func:`effnet_descriptor`) → (degradation logits, degradation embedding, content embedding)."""

    def __init__(self, in_dim: int, n_types: int, emb_dim: int = 16, content_dim: int = 16, hidden: int = 128):
        super().__init__()
        self.n_types, self.emb_dim, self.content_dim = n_types, emb_dim, content_dim
        self.register_buffer("mu", torch.zeros(in_dim))
        self.register_buffer("sd", torch.ones(in_dim))
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU())
        self.degradation = nn.Linear(hidden, emb_dim)
        self.content = nn.Linear(hidden, content_dim)
        self.classify = nn.Linear(emb_dim, n_types)

    def set_normalisation(self, descriptors: torch.Tensor) -> None:
        self.mu.copy_(descriptors.mean(0))
        self.sd.copy_(descriptors.std(0).clamp_min(1e-4))

    def forward(self, desc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk((desc - self.mu) / self.sd)
        e = torch.tanh(self.degradation(h))
        return self.classify(e), e, self.content(h)

    def condition(self, desc: torch.Tensor) -> torch.Tensor:
        """The restorer's conditioning vector: [degradation embedding, content embedding], (B, emb + content)."""
        _, e, c = self(desc)
        return torch.cat([e, c], dim=1)

    @property
    def cond_dim(self) -> int:
        return self.emb_dim + self.content_dim


class _Frozen:
    """Holds the frozen feature network outside the module tree: not saved, not trained, shared by copies."""

    def __init__(self, net):
        self.net = net

    def __deepcopy__(self, memo):
        return self

    def __getstate__(self):
        # sent to another process: the packaged EfficientNet-Lite0 is loaded there instead of pickled
        from vlic.perception import effnet

        if self.net is not effnet.load():
            raise TypeError("only the packaged EfficientNet-Lite0 (vlic.perception.effnet.load()) can be sent to "
                            "another process")
        return {}

    def __setstate__(self, state):
        from vlic.perception import effnet

        self.net = effnet.load()


class UniversalRestorer(nn.Module):
    """Controller + conditioned U-Net as one restorer: ``restorer(x)`` computes the descriptor of ``x`` itself.
    The controller is frozen here (it is trained on its own, :func:`vlic.lowlevel.training.train_controller`)."""

    def __init__(self, effnet, controller: DegradationController, unet: ResidualUNet, size: int | None = None):
        super().__init__()
        if unet.cond_dim != controller.cond_dim:
            raise ValueError(f"restorer expects {unet.cond_dim}-d conditioning, the controller gives {controller.cond_dim}")
        self.effnet = _Frozen(effnet)
        self.controller, self.unet, self.size = controller.requires_grad_(False), unet, size

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        return effnet_descriptor(self.effnet.net, x, self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            cond = self.controller.condition(self.descriptor(x))
        return self.unet(x, cond)
