"""PFGM++ with a small SongUNet (EDM's NCSN++ settings: Fourier noise embedding, residual encoder, [1, 3, 3, 1]
resampling) on scikit-learn's 8x8 digits, D = 128: the images per step and step budget of pfgmpp/digits_ddpmpp,
model_channels 16 at two levels (8, 4), one block each, attention at 4x4. `--config.model.encoder_type=standard`
etc. (or set_songunet's 'ddpmpp' preset) give the DDPM++ settings."""
from configs.default_songunet import set_songunet
from configs.default_digits_configs import get_pfgmpp_config


def get_config():
    config = get_pfgmpp_config(aug_dim=128)
    set_songunet(config.model, "ncsnpp", model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,),
                 dropout=0.0)
    return config
