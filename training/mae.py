"""An audio-visual masked autoencoder with a contrastive term (CAV-MAE / MAViL style), plain torch.

The method, stage by stage (B batch, D model width, Na/Nv patches per modality):

1. ``patchify``: log-mel ``(B, 1, F, T)`` → audio patches ``(B, Na, pa*pa)``; frames
   ``(B, 1, Tv, H, W)`` → video patches ``(B, Nv, pt*pv*pv)`` (tubelets).
2. ``random_masking``: keep a random ``1 - mask_ratio`` of each modality's patches.
3. ``forward_encoder``: modality-specific blocks, then blocks shared by both modalities (applied to
   each modality on its own, as CAV-MAE's unimodal pass does for its contrastive term).
4. ``forward_decoder``: one joint decoder sees both modalities' visible tokens plus mask tokens, so
   each modality's missing patches can be inferred from the other's.
5. ``forward_loss``: mean squared error on the masked patches (targets normalised per patch) plus
   ``contrastive_weight`` × a symmetric InfoNCE between mean-pooled audio and video embeddings.
   Under DDP the InfoNCE compares against the GLOBAL batch (an all-gather that carries gradients),
   so two processes compute exactly the loss of one process on the same global batch.

Masking noise comes in with the batch (drawn per sample from the data seed), so a run does not
depend on how samples are spread over processes, and a resumed run replays the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)
from torch import nn


@dataclass(frozen=True)
class MAEConfig:
    """The model's shape. Input sizes must match :mod:`avagent.training.data`."""

    n_mels: int = 64  # log-mel bands
    n_frames: int = 192  # spectrogram frames (10 ms)
    audio_patch: int = 16  # square spectrogram patches
    video_frames: int = 16  # frames per clip
    video_side: int = 32  # frame side in pixels
    video_patch: int = 16  # square spatial patch
    video_tubelet: int = 1  # frames per video patch
    dim: int = 128  # encoder width
    depth_modality: int = 1  # blocks per modality before the shared ones
    depth_shared: int = 2  # blocks shared by both modalities
    heads: int = 4
    decoder_dim: int = 96
    decoder_depth: int = 1
    decoder_heads: int = 4
    mlp_ratio: float = 2.0
    mask_ratio_audio: float = 0.75
    mask_ratio_video: float = 0.75
    contrastive_weight: float = 0.1  # CAV-MAE uses 0.01 at scale; small data needs more
    temperature: float = 0.1  # InfoNCE temperature
    norm_pix_loss: bool = True  # targets normalised per patch (MAE's best setting)

    @property
    def n_audio(self) -> int:
        return (self.n_mels // self.audio_patch) * (self.n_frames // self.audio_patch)

    @property
    def n_video(self) -> int:
        return (self.video_frames // self.video_tubelet) * (self.video_side // self.video_patch) ** 2

    @property
    def audio_patch_dim(self) -> int:
        return self.audio_patch**2

    @property
    def video_patch_dim(self) -> int:
        return self.video_tubelet * self.video_patch**2


# Named model sizes; a config file or the CLI overrides only what differs.
MODEL_PRESETS: dict[str, MAEConfig] = {
    "tiny": MAEConfig(dim=64, depth_modality=1, depth_shared=1, heads=2, decoder_dim=48,
                      decoder_depth=1, decoder_heads=2),
    "small": MAEConfig(),
    "base": MAEConfig(dim=384, depth_modality=4, depth_shared=4, heads=6, decoder_dim=256,
                      decoder_depth=2, decoder_heads=8, mlp_ratio=4.0),
}


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def _gather(z: torch.Tensor) -> torch.Tensor:
    """All rows of ``z`` over the process group, gradients flowing back to each rank's rows."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class AVMAE(nn.Module):
    def __init__(self, cfg: MAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, dd = cfg.dim, cfg.decoder_dim
        self.audio_embed = nn.Linear(cfg.audio_patch_dim, d)
        self.video_embed = nn.Linear(cfg.video_patch_dim, d)
        self.audio_pos = nn.Parameter(torch.zeros(1, cfg.n_audio, d))
        self.video_pos = nn.Parameter(torch.zeros(1, cfg.n_video, d))
        self.modality = nn.Parameter(torch.zeros(2, d))
        self.audio_blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth_modality))
        self.video_blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth_modality))
        self.shared_blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth_shared))
        self.norm = nn.LayerNorm(d)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos = nn.Parameter(torch.zeros(1, cfg.n_audio + cfg.n_video, dd))
        self.decoder_blocks = nn.ModuleList(
            Block(dd, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd)
        self.audio_pred = nn.Linear(dd, cfg.audio_patch_dim)
        self.video_pred = nn.Linear(dd, cfg.video_patch_dim)
        self._init()

    def _init(self) -> None:
        for p in (self.audio_pos, self.video_pos, self.decoder_pos, self.modality,
                  self.mask_token):
            nn.init.normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # -- 1. patchify ----------------------------------------------------------------------------
    def patchify(self, audio: torch.Tensor, video: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, 1, F, T) → (B, Na, p*p); video (B, 1, Tv, H, W) → (B, Nv, pt*pv*pv)."""
        c = self.cfg
        B, p = audio.shape[0], c.audio_patch
        a = audio.reshape(B, c.n_mels // p, p, c.n_frames // p, p)  # (B, F/p, p, T/p, p)
        # Time-major order (T/p, F/p) so neighbouring tokens are neighbouring moments.
        a = a.permute(0, 3, 1, 2, 4).reshape(B, c.n_audio, p * p)
        t, q = c.video_tubelet, c.video_patch
        g = c.video_side // q
        v = video.reshape(B, c.video_frames // t, t, g, q, g, q)  # (B, Tv/t, t, g, q, g, q)
        v = v.permute(0, 1, 3, 5, 2, 4, 6).reshape(B, c.n_video, t * q * q)
        return a, v

    # -- 2. random_masking ----------------------------------------------------------------------
    @staticmethod
    def random_masking(x: torch.Tensor, ratio: float, noise: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep the ``1 - ratio`` patches with the smallest ``noise``.

        x (B, N, D), noise (B, N) → kept (B, K, D), mask (B, N) with 1 = removed, ids_restore
        (B, N) that puts a [kept, removed] sequence back in patch order.
        """
        B, N, D = x.shape
        keep = max(1, round(N * (1 - ratio)))
        ids_shuffle = torch.argsort(noise, dim=1)  # (B, N) ascending: smallest kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, N)
        ids_keep = ids_shuffle[:, :keep]  # (B, K)
        kept = torch.gather(x, 1, ids_keep[:, :, None].expand(-1, -1, D))  # (B, K, D)
        mask = torch.ones(B, N, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # (B, N) in patch order
        return kept, mask, ids_restore

    # -- 3. forward_encoder ---------------------------------------------------------------------
    def forward_encoder(self, a_patches: torch.Tensor, v_patches: torch.Tensor,
                        noise_a: torch.Tensor | None, noise_v: torch.Tensor | None,
                        ratio_a: float, ratio_v: float) -> dict[str, torch.Tensor]:
        """patches (B, N*, P*) → latents ``za`` (B, Ka, D), ``zv`` (B, Kv, D) of kept tokens.

        ``noise_*`` None (or ratio 0) keeps every patch: the probe's and the critic's view."""
        a = self.audio_embed(a_patches) + self.audio_pos + self.modality[0]  # (B, Na, D)
        v = self.video_embed(v_patches) + self.video_pos + self.modality[1]  # (B, Nv, D)
        out: dict[str, torch.Tensor] = {}
        for name, x, noise, ratio in (("a", a, noise_a, ratio_a), ("v", v, noise_v, ratio_v)):
            if noise is not None and ratio > 0:
                x, mask, restore = self.random_masking(x, ratio, noise)
            else:
                mask = torch.zeros(x.shape[:2], device=x.device)
                restore = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
            for blk in (self.audio_blocks if name == "a" else self.video_blocks):
                x = blk(x)
            for blk in self.shared_blocks:
                x = blk(x)
            out[f"z{name}"] = self.norm(x)  # (B, K, D)
            out[f"mask_{name}"] = mask
            out[f"restore_{name}"] = restore
        return out

    def embed(self, audio: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unmasked mean-pooled embeddings: audio (B, D), video (B, D)."""
        a, v = self.patchify(audio, video)
        enc = self.forward_encoder(a, v, None, None, 0.0, 0.0)
        return enc["za"].mean(1), enc["zv"].mean(1)

    # -- 4. forward_decoder ---------------------------------------------------------------------
    def _unshuffle(self, z: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        B, K, Dd = z.shape
        N = restore.shape[1]
        full = torch.cat([z, self.mask_token.expand(B, N - K, Dd)], dim=1)  # (B, N, Dd)
        return torch.gather(full, 1, restore[:, :, None].expand(-1, -1, Dd))

    def forward_decoder(self, enc: dict[str, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """latents → predicted patches: audio (B, Na, pa*pa), video (B, Nv, pt*pv*pv)."""
        c = self.cfg
        a = self._unshuffle(self.decoder_embed(enc["za"]), enc["restore_a"])  # (B, Na, Dd)
        v = self._unshuffle(self.decoder_embed(enc["zv"]), enc["restore_v"])  # (B, Nv, Dd)
        x = torch.cat([a, v], dim=1) + self.decoder_pos  # (B, Na+Nv, Dd): joint
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.audio_pred(x[:, : c.n_audio]), self.video_pred(x[:, c.n_audio:])

    # -- 5. forward_loss ------------------------------------------------------------------------
    def _recon(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
               ) -> torch.Tensor:
        if self.cfg.norm_pix_loss:
            mean = target.mean(-1, keepdim=True)
            var = target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(-1)  # (B, N)
        # Per-sample mean over masked patches, so the batch mean splits exactly over ranks.
        return (per_patch * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B,)

    def forward_loss(self, a_patches: torch.Tensor, v_patches: torch.Tensor,
                     pred_a: torch.Tensor, pred_v: torch.Tensor, enc: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
        """Scalar losses: ``loss`` = recon_audio + recon_video + w · contrastive."""
        ra = self._recon(pred_a, a_patches, enc["mask_a"]).mean()
        rv = self._recon(pred_v, v_patches, enc["mask_v"]).mean()
        ea = F.normalize(enc["za"].mean(1), dim=-1)  # (B, D)
        ev = F.normalize(enc["zv"].mean(1), dim=-1)  # (B, D)
        ga, gv = _gather(ea), _gather(ev)  # (B_global, D)
        offset = _rank() * ea.shape[0]
        labels = torch.arange(ea.shape[0], device=ea.device) + offset
        t = self.cfg.temperature
        nce = 0.5 * (F.cross_entropy(ea @ gv.T / t, labels)
                     + F.cross_entropy(ev @ ga.T / t, labels))
        loss = ra + rv + self.cfg.contrastive_weight * nce
        return {"loss": loss, "recon_audio": ra.detach(), "recon_video": rv.detach(),
                "contrastive": nce.detach()}

    def forward(self, audio: torch.Tensor, video: torch.Tensor, noise_a: torch.Tensor,
                noise_v: torch.Tensor) -> dict[str, Any]:
        a, v = self.patchify(audio, video)
        enc = self.forward_encoder(a, v, noise_a, noise_v, self.cfg.mask_ratio_audio,
                                   self.cfg.mask_ratio_video)
        pred_a, pred_v = self.forward_decoder(enc)
        return self.forward_loss(a, v, pred_a, pred_v, enc)
