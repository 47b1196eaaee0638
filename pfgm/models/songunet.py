"""EDM's SongUNet (Karras et al. 2022; github.com/NVlabs/edm, training/networks.py), the network PFGM++
trains (github.com/Newbeeer/pfgmpp): score_sde's DDPM++ / NCSN++ re-laid out by EDM, written from its
description. Its state_dict has the original's keys and shapes (those of a released `EDMPrecond.model`), so
released weights load one to one (pfgm/published.py); tests/data/edm-songunet-state-dicts.json lists them.

Config keys (model.*, EDM's argument names; configs/default_songunet.py set_songunet): model_channels,
channel_mult, channel_mult_emb, num_blocks, attn_resolutions, dropout, label_dropout, embedding_type
('positional' DDPM++, 'fourier' NCSN++), channel_mult_noise, encoder_type ('standard', 'skip', 'residual'),
decoder_type ('standard', 'skip'), resample_filter, label_dim, augment_dim; data.image_size and
data.num_channels give the resolution and the input / output channels.
"""
import math

import torch
from torch import nn
from torch.nn.functional import silu

from pfgm.models import register_model
from pfgm.models.conditioning import class_labels_for
from pfgm.models.song_layers import Conv2d, FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, UNetBlock

_CHOICES = {"embedding_type": ("positional", "fourier"), "encoder_type": ("standard", "skip", "residual"),
            "decoder_type": ("standard", "skip")}


def edm_noise_label(sigma):
    """EDM's c_noise(sigma) = ln(sigma) / 4, what the network embeds (EDMPrecond)."""
    return torch.log(sigma) / 4


@register_model("songunet")
class SongUNet(nn.Module):
    """x (B, C, H, W) and the method's noise level t (B,) -> F shaped like x.

    `forward(x, t, class_labels=None, augment_labels=None)` is the package's interface: under PFGM++
    (training.sde = 'pfgmpp', the only method it serves) t is sigma and the network embeds EDM's noise label
    ln(sigma) / 4, as EDMPrecond passes it. `unet(x, noise_labels, class_labels, augment_labels)` is the
    original SongUNet.forward: the same computation from the noise labels themselves. class_labels: (B,
    label_dim) one-hot, None = the null label (zeros), as EDMPrecond; augment_labels: (B, augment_dim) or None.
    """

    def __init__(self, config):
        super().__init__()
        m, data = config.model, config.data
        if config.training.sde != "pfgmpp":
            raise ValueError(f"training.sde: SongUNet is EDM's network and serves PFGM++ ('pfgmpp') only, "
                             f"got {config.training.sde!r}")
        for key, choices in _CHOICES.items():
            if m[key] not in choices:
                raise ValueError(f"model.{key}: unknown {m[key]!r}; choose one of {list(choices)}")
        for key in ("model_channels", "channel_mult_emb", "channel_mult_noise", "num_blocks"):
            if not isinstance(m[key], int) or m[key] < 1:
                raise ValueError(f"model.{key}: must be an integer >= 1, got {m[key]!r}")
        for key in ("label_dim", "augment_dim"):
            if not isinstance(m[key], int) or m[key] < 0:
                raise ValueError(f"model.{key}: must be an integer >= 0, got {m[key]!r}")
        if not 0 <= m.label_dropout < 1 or not 0 <= m.dropout < 1:
            raise ValueError(f"model.dropout, model.label_dropout: must be in [0, 1), got {m.dropout}, "
                             f"{m.label_dropout}")
        res, channels = int(data.image_size), int(data.num_channels)
        channel_mult = [int(c) for c in m.channel_mult]
        if not channel_mult or res % (1 << (len(channel_mult) - 1)):
            raise ValueError(f"model.channel_mult: {len(channel_mult)} levels do not fit data.image_size {res}")
        self.label_dim, self.augment_dim = m.label_dim, m.augment_dim
        self.label_dropout = float(m.label_dropout)
        self.build(res, channels, m.model_channels, channel_mult, m.channel_mult_emb, m.channel_mult_noise,
                   m.num_blocks, [int(r) for r in m.attn_resolutions], float(m.dropout), m.embedding_type,
                   m.encoder_type, m.decoder_type, [float(f) for f in m.resample_filter])

    def build(self, res, channels, model_channels, channel_mult, channel_mult_emb, channel_mult_noise, num_blocks,
              attn_resolutions, dropout, embedding_type, encoder_type, decoder_type, resample_filter):
        """The modules, registered in the original's order under its names."""
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        block = dict(emb_channels=emb_channels, dropout=dropout, skip_scale=math.sqrt(0.5), eps=1e-6,
                     resample_filter=resample_filter)
        self.map_noise = (PositionalEmbedding(noise_channels) if embedding_type == "positional"
                          else FourierEmbedding(noise_channels))
        self.map_label = Linear(self.label_dim, noise_channels) if self.label_dim else None
        self.map_augment = Linear(self.augment_dim, noise_channels, bias=False) if self.augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)

        self.enc = nn.ModuleDict()
        cout, caux = channels, channels
        for level, mult in enumerate(channel_mult):
            r = res >> level
            if level == 0:
                self.enc[f"{r}x{r}_conv"] = Conv2d(cout, model_channels, 3)
                cout = model_channels
            else:
                self.enc[f"{r}x{r}_down"] = UNetBlock(cout, cout, down=True, **block)
                if encoder_type == "skip":
                    self.enc[f"{r}x{r}_aux_down"] = Conv2d(caux, caux, 0, down=True, resample_filter=resample_filter)
                    self.enc[f"{r}x{r}_aux_skip"] = Conv2d(caux, cout, 1)
                if encoder_type == "residual":
                    self.enc[f"{r}x{r}_aux_residual"] = Conv2d(caux, cout, 3, down=True, fused=True,
                                                               resample_filter=resample_filter)
                    caux = cout
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{r}x{r}_block{idx}"] = UNetBlock(cin, cout, attention=r in attn_resolutions, **block)
        skips = [b.out_channels for name, b in self.enc.items() if "aux" not in name]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            r = res >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{r}x{r}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{r}x{r}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{r}x{r}_up"] = UNetBlock(cout, cout, up=True, **block)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attention = idx == num_blocks and r in attn_resolutions
                self.dec[f"{r}x{r}_block{idx}"] = UNetBlock(cin, cout, attention=attention, **block)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{r}x{r}_aux_up"] = Conv2d(channels, channels, 0, up=True,
                                                         resample_filter=resample_filter)
                self.dec[f"{r}x{r}_aux_norm"] = GroupNorm(cout, eps=1e-6)
                self.dec[f"{r}x{r}_aux_conv"] = Conv2d(cout, channels, 3, gain=1e-5)

    def forward(self, x, t, class_labels=None, augment_labels=None):
        return self.unet(x, edm_noise_label(t.reshape(-1).expand(x.shape[0])), class_labels, augment_labels)

    def embedding(self, noise_labels, class_labels, augment_labels, x):
        """The (B, emb_channels) vector every block is conditioned on."""
        emb = self.map_noise(noise_labels.to(x.dtype))
        labels = class_labels_for(class_labels, self.label_dim, x)
        if labels is not None:
            if self.training and self.label_dropout:
                keep = torch.rand((x.shape[0], 1), device=x.device) >= self.label_dropout
                labels = labels * keep.to(labels.dtype)
            emb = emb + self.map_label(labels * math.sqrt(self.label_dim))
        if augment_labels is None and self.training and self.map_augment is not None:
            # a batch not augmented has zero labels (EDM's pipe at p = 0): the same embedding, bit for bit (no
            # bias), and map_augment takes part in the graph, as DDP requires of every parameter
            augment_labels = torch.zeros(x.shape[0], self.augment_dim, device=x.device)
        if augment_labels is not None:
            if self.map_augment is None:
                raise ValueError("augment_labels given to a SongUNet built with model.augment_dim = 0")
            emb = emb + self.map_augment(augment_labels.to(x.dtype))
        return silu(self.map_layer1(silu(self.map_layer0(emb))))

    def unet(self, x, noise_labels, class_labels=None, augment_labels=None):
        """The original SongUNet.forward: F(x, noise label, class label, augmentation label)."""
        emb = self.embedding(noise_labels, class_labels, augment_labels, x)
        skips, aux = [], x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / math.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)
        aux = tmp = None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:  # a block after the first at its level takes a skip
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return aux
