"""NCSN++ / DDPM++ U-Net (score_sde family) with the PFGM head.

Written from the published description of the network; the module layout (one flat `all_modules`
ModuleList, appended in the original order) and every parameter name and shape match the original
score_sde / Poisson_flow code, so their checkpoints load with `strict=True` once the `module.` prefix
that `nn.DataParallel` adds is stripped, and their unnamed EMA list lines up with
`[p for p in model.parameters() if p.requires_grad]`.
"""
import functools
import math

import torch
from torch import nn

from pfgm.models import register_model
from pfgm.models import layers
from pfgm.models.conditioning import LabelEmbedding, class_labels_for, no_augment_labels

_SDES = ("poisson", "vesde", "vpsde", "subvpsde", "pfgmpp")


def _cfg(section, key, default):
    return section.get(key, default) if hasattr(section, "get") else getattr(section, key, default)


@register_model("ncsnpp")
class NCSNpp(nn.Module):
    """NCSN++ / DDPM++ network.

    Call as ``model(x, cond, class_labels=None)`` with x of shape (B, C, H, W) (C = data.num_channels,
    H = W = data.image_size) and cond of shape (B,) (a scalar or a (B, 1) tensor is broadcast / flattened).
    With ``model.label_dim`` > 0, class_labels (B, label_dim) one-hot (zeros: the null label) are embedded by
    ``map_label`` and added to the noise embedding, as EDM's SongUNet does; with 0 there is no such module
    and the state_dict is the original's (pfgm.models.conditioning).

    What `cond` is depends on ``config.training.sde``:

    * ``'poisson'`` (PFGM): cond is the augmented coordinate z > 0. With ``embedding_type='positional'``
      raw z goes into the sinusoidal embedding; with ``'fourier'`` log z goes into the Gaussian Fourier
      features. Returns ``(v_x, v_z)``: v_x shaped like x and v_z of shape (B,), the spatial mean of the
      extra (C+1-th) output channel. ``progressive='output_skip'`` is rejected (the original silently
      returns a colour channel as v_z there).
    * ``'vpsde'`` / ``'subvpsde'`` (continuous DDPM++): cond is t * 999 (t in [eps, 1]) fed to the
      positional embedding; returns the noise prediction eps_hat shaped like x (the caller forms the
      score -eps_hat / std(t)).
    * ``'vesde'`` (continuous NCSN++): cond is sigma(t) > 0; the Fourier embedding takes log sigma, and
      with ``scale_by_sigma=True`` the output is divided by sigma, so it is the score itself.
    * ``'pfgmpp'`` (PFGM++, EDM-preconditioned): cond is the noise level sigma > 0; either embedding gets
      EDM's noise label log(sigma) / 4. Returns F shaped like x (the method forms the denoiser);
      ``scale_by_sigma`` is refused (the preconditioning scales the output).

    With ``embedding_type='positional'`` and ``scale_by_sigma=True`` (discrete VE), cond is the noise
    index and the output is divided by ``sigmas[cond.long()]``, as in the original.

    If ``data.centered`` is False, inputs in [0, 1] are mapped to 2x - 1 inside the model.
    """

    def __init__(self, config):
        super().__init__()
        m, data = config.model, config.data
        sde = str(config.training.sde).lower()
        if sde not in _SDES:
            raise ValueError(f"training.sde: unknown {sde!r}; NCSNpp supports {_SDES}")
        self.poisson = sde == "poisson"
        self.edm_label = sde == "pfgmpp"

        self.act = act = layers.get_act(_cfg(m, "nonlinearity", "swish"))
        normalization = str(_cfg(m, "normalization", "GroupNorm")).lower()
        if normalization != "groupnorm":
            raise ValueError(f"model.normalization: only 'GroupNorm' is supported, got {normalization!r}")
        attention_type = str(_cfg(m, "attention_type", "ddpm")).lower()
        if attention_type != "ddpm":
            raise ValueError(f"model.attention_type: only 'ddpm' is supported, got {attention_type!r}")
        if int(_cfg(m, "conv_size", 3)) != 3:
            raise ValueError("model.conv_size: only 3 is supported")

        sigma_min, sigma_max = float(m.sigma_min), float(m.sigma_max)
        num_scales = int(m.num_scales)
        sigmas = torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_scales,
                                          dtype=torch.float64))
        self.register_buffer("sigmas", sigmas)

        self.nf = nf = int(m.nf)
        ch_mult = tuple(int(c) for c in m.ch_mult)
        self.num_res_blocks = num_res_blocks = int(m.num_res_blocks)
        self.attn_resolutions = attn_resolutions = tuple(int(r) for r in m.attn_resolutions)
        dropout = float(m.dropout)
        resamp_with_conv = bool(m.resamp_with_conv)
        self.num_resolutions = num_resolutions = len(ch_mult)
        image_size = int(data.image_size)
        self.all_resolutions = [image_size // (2 ** i) for i in range(num_resolutions)]
        if image_size % (2 ** (num_resolutions - 1)) != 0:
            raise ValueError(f"data.image_size {image_size} is not divisible by 2^{num_resolutions - 1}")

        self.conditional = conditional = bool(m.conditional)
        fir = bool(m.fir)
        fir_kernel = tuple(_cfg(m, "fir_kernel", (1, 3, 3, 1)))
        self.skip_rescale = skip_rescale = bool(m.skip_rescale)
        self.resblock_type = resblock_type = str(m.resblock_type).lower()
        self.progressive = progressive = str(m.progressive).lower()
        self.progressive_input = progressive_input = str(m.progressive_input).lower()
        self.embedding_type = embedding_type = str(m.embedding_type).lower()
        combine_method = str(_cfg(m, "progressive_combine", "sum")).lower()
        init_scale = float(m.init_scale)
        self.scale_by_sigma = bool(_cfg(m, "scale_by_sigma", False))
        if self.edm_label and self.scale_by_sigma:
            raise ValueError("model.scale_by_sigma: PFGM++'s preconditioning scales the output; set it to False")
        self.centered = bool(data.centered)
        self.channels = channels = int(data.num_channels)

        if resblock_type not in ("ddpm", "biggan"):
            raise ValueError(f"model.resblock_type: unknown {resblock_type!r} (ddpm, biggan)")
        if progressive not in ("none", "output_skip", "residual"):
            raise ValueError(f"model.progressive: unknown {progressive!r} (none, output_skip, residual)")
        if progressive_input not in ("none", "input_skip", "residual"):
            raise ValueError(f"model.progressive_input: unknown {progressive_input!r} (none, input_skip, residual)")
        if embedding_type not in ("fourier", "positional"):
            raise ValueError(f"model.embedding_type: unknown {embedding_type!r} (fourier, positional)")
        if combine_method not in ("sum", "cat"):
            raise ValueError(f"model.progressive_combine: unknown {combine_method!r} (sum, cat)")
        if self.poisson and progressive == "output_skip":
            raise ValueError("model.progressive='output_skip' is not supported with training.sde='poisson': "
                             "that head has no extra channel for v_z")

        self.label_dim = label_dim = int(_cfg(m, "label_dim", 0))
        if label_dim < 0:
            raise ValueError(f"model.label_dim: must be >= 0, got {label_dim}")
        if label_dim and not conditional:
            raise ValueError("model.label_dim: class labels enter through the noise embedding, which "
                             "model.conditional = False leaves out")

        modules = []
        if embedding_type == "fourier":
            modules.append(layers.GaussianFourierProjection(embedding_size=nf, scale=float(m.fourier_scale)))
            embed_dim = 2 * nf
        else:
            embed_dim = nf
        # Kept out of all_modules so that label_dim = 0 leaves the original layout untouched.
        self.map_label = LabelEmbedding(label_dim, embed_dim) if label_dim else None
        if conditional:
            modules.append(layers.dense(embed_dim, nf * 4))
            modules.append(layers.dense(nf * 4, nf * 4))

        attn_block = functools.partial(layers.AttnBlockpp, init_scale=init_scale, skip_rescale=skip_rescale)
        upsample = functools.partial(layers.Upsample, with_conv=resamp_with_conv, fir=fir, fir_kernel=fir_kernel)
        downsample = functools.partial(layers.Downsample, with_conv=resamp_with_conv, fir=fir,
                                       fir_kernel=fir_kernel)
        # Parameter-free pyramid resamplers (kept outside all_modules, as in the original).
        self.pyramid_upsample = (layers.Upsample(fir=fir, fir_kernel=fir_kernel, with_conv=False)
                                 if progressive == "output_skip" else None)
        self.pyramid_downsample = (layers.Downsample(fir=fir, fir_kernel=fir_kernel, with_conv=False)
                                   if progressive_input == "input_skip" else None)
        pyramid_up_conv = functools.partial(layers.Upsample, fir=fir, fir_kernel=fir_kernel, with_conv=True)
        pyramid_down_conv = functools.partial(layers.Downsample, fir=fir, fir_kernel=fir_kernel, with_conv=True)
        combiner = functools.partial(layers.Combine, method=combine_method)

        if resblock_type == "ddpm":
            resblock = functools.partial(layers.ResnetBlockDDPMpp, act=act, dropout=dropout,
                                         init_scale=init_scale, skip_rescale=skip_rescale, temb_dim=nf * 4)
        else:
            resblock = functools.partial(layers.ResnetBlockBigGANpp, act=act, dropout=dropout, fir=fir,
                                         fir_kernel=fir_kernel, init_scale=init_scale,
                                         skip_rescale=skip_rescale, temb_dim=nf * 4)

        # Downsampling path.
        input_pyramid_ch = channels
        modules.append(layers.conv3x3(channels, nf))
        hs_c = [nf]
        in_ch = nf
        for i_level in range(num_resolutions):
            for _ in range(num_res_blocks):
                out_ch = nf * ch_mult[i_level]
                modules.append(resblock(in_ch=in_ch, out_ch=out_ch))
                in_ch = out_ch
                if self.all_resolutions[i_level] in attn_resolutions:
                    modules.append(attn_block(channels=in_ch))
                hs_c.append(in_ch)
            if i_level != num_resolutions - 1:
                if resblock_type == "ddpm":
                    modules.append(downsample(in_ch=in_ch))
                else:
                    modules.append(resblock(down=True, in_ch=in_ch))
                if progressive_input == "input_skip":
                    modules.append(combiner(dim1=input_pyramid_ch, dim2=in_ch))
                    if combine_method == "cat":
                        in_ch *= 2
                elif progressive_input == "residual":
                    modules.append(pyramid_down_conv(in_ch=input_pyramid_ch, out_ch=in_ch))
                    input_pyramid_ch = in_ch
                hs_c.append(in_ch)

        # Middle.
        in_ch = hs_c[-1]
        modules.append(resblock(in_ch=in_ch))
        modules.append(attn_block(channels=in_ch))
        modules.append(resblock(in_ch=in_ch))

        # Upsampling path.
        pyramid_ch = 0
        for i_level in reversed(range(num_resolutions)):
            for _ in range(num_res_blocks + 1):
                out_ch = nf * ch_mult[i_level]
                modules.append(resblock(in_ch=in_ch + hs_c.pop(), out_ch=out_ch))
                in_ch = out_ch
            if self.all_resolutions[i_level] in attn_resolutions:
                modules.append(attn_block(channels=in_ch))
            if progressive != "none":
                if i_level == num_resolutions - 1:
                    modules.append(layers.group_norm(in_ch))
                    if progressive == "output_skip":
                        modules.append(layers.conv3x3(in_ch, channels, init_scale=init_scale))
                        pyramid_ch = channels
                    else:
                        modules.append(layers.conv3x3(in_ch, in_ch, bias=True))
                        pyramid_ch = in_ch
                else:
                    if progressive == "output_skip":
                        modules.append(layers.group_norm(in_ch))
                        modules.append(layers.conv3x3(in_ch, channels, bias=True, init_scale=init_scale))
                        pyramid_ch = channels
                    else:
                        modules.append(pyramid_up_conv(in_ch=pyramid_ch, out_ch=in_ch))
                        pyramid_ch = in_ch
            if i_level != 0:
                if resblock_type == "ddpm":
                    modules.append(upsample(in_ch=in_ch))
                else:
                    modules.append(resblock(in_ch=in_ch, up=True))
        assert not hs_c

        if progressive != "output_skip":
            out_channels = channels + 1 if self.poisson else channels
            modules.append(layers.group_norm(in_ch))
            modules.append(layers.conv3x3(in_ch, out_channels, init_scale=init_scale))

        self.all_modules = nn.ModuleList(modules)

    # ------------------------------------------------------------------ forward

    def _combine_residual(self, a, b):
        return (a + b) / math.sqrt(2.0) if self.skip_rescale else a + b

    def forward(self, x, cond, class_labels=None, augment_labels=None):
        no_augment_labels(augment_labels, "NCSNpp")
        class_labels = class_labels_for(class_labels, self.label_dim, x)
        batch = x.shape[0]
        cond = torch.as_tensor(cond, device=x.device)
        if not torch.is_floating_point(cond):
            cond = cond.to(x.dtype)
        cond = cond.reshape(-1)
        if cond.numel() == 1 and batch != 1:
            cond = cond.expand(batch)
        if cond.shape[0] != batch:
            raise ValueError(f"cond must have shape ({batch},), got {tuple(cond.shape)}")

        mods = iter(self.all_modules)
        nxt = functools.partial(next, mods)

        label = torch.log(cond) / 4 if self.edm_label else cond
        if self.embedding_type == "fourier":
            used_sigmas = cond
            temb = nxt()(label if self.edm_label else torch.log(cond))
        else:
            used_sigmas = None
            temb = layers.get_positional_embedding(label, self.nf).to(x.dtype)
        if self.map_label is not None:
            temb = temb + self.map_label(class_labels).to(temb.dtype)
        if self.conditional:
            temb = nxt()(temb)
            temb = nxt()(self.act(temb))
        else:
            temb = None

        if not self.centered:
            x = 2 * x - 1.0

        input_pyramid = x if self.progressive_input != "none" else None
        hs = [nxt()(x)]
        for i_level in range(self.num_resolutions):
            for _ in range(self.num_res_blocks):
                h = nxt()(hs[-1], temb)
                if self.all_resolutions[i_level] in self.attn_resolutions:
                    h = nxt()(h)
                hs.append(h)
            if i_level != self.num_resolutions - 1:
                if self.resblock_type == "ddpm":
                    h = nxt()(hs[-1])
                else:
                    h = nxt()(hs[-1], temb)
                if self.progressive_input == "input_skip":
                    input_pyramid = self.pyramid_downsample(input_pyramid)
                    h = nxt()(input_pyramid, h)
                elif self.progressive_input == "residual":
                    input_pyramid = self._combine_residual(nxt()(input_pyramid), h)
                    h = input_pyramid
                hs.append(h)

        h = hs[-1]
        h = nxt()(h, temb)
        h = nxt()(h)
        h = nxt()(h, temb)

        pyramid = None
        for i_level in reversed(range(self.num_resolutions)):
            for _ in range(self.num_res_blocks + 1):
                h = nxt()(torch.cat([h, hs.pop()], dim=1), temb)
            if self.all_resolutions[i_level] in self.attn_resolutions:
                h = nxt()(h)
            if self.progressive != "none":
                if i_level == self.num_resolutions - 1:
                    pyramid = self.act(nxt()(h))
                    pyramid = nxt()(pyramid)
                elif self.progressive == "output_skip":
                    pyramid = self.pyramid_upsample(pyramid)
                    pyramid_h = self.act(nxt()(h))
                    pyramid = pyramid + nxt()(pyramid_h)
                else:  # residual
                    pyramid = self._combine_residual(nxt()(pyramid), h)
                    h = pyramid
            if i_level != 0:
                if self.resblock_type == "ddpm":
                    h = nxt()(h)
                else:
                    h = nxt()(h, temb)
        assert not hs

        if self.progressive == "output_skip":
            h = pyramid
        else:
            h = self.act(nxt()(h))
            h = nxt()(h)
        if next(mods, None) is not None:
            raise RuntimeError("NCSNpp.forward did not use every module (layout bug)")

        if self.scale_by_sigma:
            if used_sigmas is None:  # positional (discrete VE): cond is the noise-level index
                used_sigmas = self.sigmas[cond.long()]
            h = h / used_sigmas.to(h.dtype).reshape(batch, *([1] * (h.dim() - 1)))

        if self.poisson:
            c = self.channels
            return h[:, :c], h[:, c].mean(dim=(1, 2))
        return h
