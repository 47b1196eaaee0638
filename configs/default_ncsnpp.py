"""score_sde's NCSN++ / DDPM++ network (pfgm/models/ncsnpp.py) as config keys (configs/default_common.py
re-exports it beside the other building blocks)."""


def set_ncsnpp(model, **overrides):
    """The NCSN++/DDPM++ architecture keys (Song et al. 2021), at the paper's DDPM++ CIFAR-10 values.

    Keyword arguments override single keys, e.g. set_ncsnpp(model, fir=True).
    """
    model.name = "ncsnpp"
    model.scale_by_sigma = False
    model.normalization = "GroupNorm"
    model.nonlinearity = "swish"
    model.nf = 128
    model.ch_mult = (1, 2, 2, 2)
    model.num_res_blocks = 4
    model.attn_resolutions = (16,)
    model.resamp_with_conv = True
    model.conditional = True
    model.fir = False
    model.fir_kernel = [1, 3, 3, 1]
    model.skip_rescale = True
    model.resblock_type = "biggan"
    model.progressive = "none"
    model.progressive_input = "none"
    model.progressive_combine = "sum"
    model.attention_type = "ddpm"
    model.init_scale = 0.0
    model.embedding_type = "positional"
    model.fourier_scale = 16
    model.conv_size = 3
    model.label_dim = 0               # classes embedded beside the noise level (0: unconditional, original layout)
    for key, value in overrides.items():
        if key not in model:
            raise KeyError(f"set_ncsnpp: unknown model key {key!r}")
        model[key] = value
    return model
