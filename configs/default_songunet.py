"""EDM's SongUNet (pfgm/models/songunet.py) as config keys: its DDPM++ and NCSN++ settings (EDM's train.py
--arch ddpmpp | ncsnpp) at EDM's CIFAR-10 values, the keys named as its arguments."""

# score_sde's NCSN++ keys (configs/default_ncsnpp.set_ncsnpp) that SongUNet does not read.
NCSNPP_ONLY_KEYS = ("scale_by_sigma", "normalization", "nonlinearity", "nf", "ch_mult", "num_res_blocks",
                    "resamp_with_conv", "conditional", "fir", "fir_kernel", "skip_rescale", "resblock_type",
                    "progressive", "progressive_input", "progressive_combine", "attention_type", "init_scale",
                    "fourier_scale", "conv_size")

# EDM's train.py --arch settings of its SongUNet (github.com/NVlabs/edm), which PFGM++ trains.
SONGUNET_PRESETS = {
    "ddpmpp": dict(embedding_type="positional", encoder_type="standard", decoder_type="standard",
                   channel_mult_noise=1, resample_filter=(1, 1)),
    "ncsnpp": dict(embedding_type="fourier", encoder_type="residual", decoder_type="standard",
                   channel_mult_noise=2, resample_filter=(1, 3, 3, 1)),
}


def set_songunet(model, preset="ncsnpp", **overrides):
    """EDM's SongUNet (pfgm/models/songunet.py) with the keys named as its arguments, at EDM's CIFAR-10
    values (train.py: model_channels 128, channel_mult [2, 2, 2], dropout 0.13) and the `preset`'s ('ddpmpp' or
    'ncsnpp') embedding, encoder, decoder and resampling filter:

      model_channels, channel_mult, channel_mult_emb  channels: base, per resolution, of the embedding vector
      num_blocks          residual blocks per resolution
      attn_resolutions    resolutions with self-attention
      dropout             of the blocks' activations
      label_dropout       EDM's in-network dropout of class labels in training (training.label_dropout is
                          the package's own, on the data side; leave one of them at 0)
      embedding_type      noise embedding: 'positional' (DDPM++) or 'fourier' (NCSN++)
      channel_mult_noise  its width in model_channels (1 DDPM++, 2 NCSN++)
      encoder_type, decoder_type  'standard' | 'skip' | 'residual' (encoder), 'standard' | 'skip' (decoder)
      resample_filter     the FIR taps of the up / downsampling ([1, 1] DDPM++, [1, 3, 3, 1] NCSN++)
      label_dim           classes (0: unconditional), one-hot through map_label
      augment_dim         augmentation labels (9 with the augmentation pipe, 0: none), through map_augment

    Keyword arguments override single keys, e.g. set_songunet(model, 'ddpmpp', channel_mult=(1, 2, 2, 2)).
    The NCSN++ keys of set_ncsnpp that SongUNet does not read are removed (a data set's defaults may have set them).
    """
    for key in NCSNPP_ONLY_KEYS:
        if key in model:
            del model[key]
    model.name = "songunet"
    model.model_channels = 128
    model.channel_mult = (2, 2, 2)
    model.channel_mult_emb = 4
    model.num_blocks = 4
    model.attn_resolutions = (16,)
    model.dropout = 0.13
    model.label_dropout = 0.0
    for key, value in SONGUNET_PRESETS[preset].items():
        model[key] = value
    model.label_dim = 0
    model.augment_dim = 0
    for key, value in overrides.items():
        if key not in model:
            raise KeyError(f"set_songunet: unknown model key {key!r}")
        model[key] = value
    return model
