"""Class-conditional generation as config keys, the same for every method (configs/default_common.py
re-exports it beside the other building blocks)."""
import ml_collections


def set_labels(config, *, label_dim=0, label_dropout=0.0, class_label=-1, guidance=1.0, guidance_tmin=0.0):
    """Class-conditional generation, the same keys for every method (pfgm/methods/conditioning.py,
    docs/conditional.md):

      model.label_dim         number of classes the network is given as a one-hot input (0: unconditional,
                              as EDM); it must equal the data set's class count
      training.label_dropout  probability that a training label is replaced by the null label (the all-zero
                              one-hot), so that one network learns the unconditional prediction too
      sampling.class_label    the class every sample is drawn from (-1: a random class per sample)
      sampling.guidance       w: the prediction is u + w (c - u) of the unconditional (u) and conditional (c)
                              ones (1: plain conditional sampling; > 1: classifier-free guidance)
      sampling.guidance_tmin  guidance only where the sampler's time (PFGM: z, PFGM++: sigma, SDEs: t) is at
                              least this; below it the class prediction alone (0: guidance everywhere)
    """
    values = {"model": dict(label_dim=label_dim), "training": dict(label_dropout=label_dropout),
              "sampling": dict(class_label=class_label, guidance=guidance, guidance_tmin=guidance_tmin)}
    for section, keys in values.items():
        if section not in config:   # a section the config does not have yet is created, as set_* do
            config[section] = ml_collections.ConfigDict()
        config[section].update(keys)
    return config
