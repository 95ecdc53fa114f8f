"""Learned affinity scorers: predict the transfer gain g(s, t) from task embeddings.

Two scorers (both trained with smooth-L1 loss on z-scored gains, AdamW, learning rate picked on
held-out pairs), wrapped in a seeded ensemble that gives every prediction a mean and a standard
deviation in metric points:

* ``backbone`` (:mod:`.scorer`, Feng et al. 2023): the target's and the source's prompt
  matrices ``[P_t; P_s]`` (2L x H) run through a transformer initialised from the backbone;
* ``light`` (:mod:`.light`): an MLP over ``[e_t, e_s, e_t*e_s, |e_t-e_s|, cos]`` of any vector
  embedding (TuPaTE of any method, prompt token mean).

Modules: :mod:`.data` (pairs, sampling, gain scaling), :mod:`.train` (the shared training loop
and learning-rate search), :mod:`.ensemble`, :mod:`.io` (save/load, pool compatibility),
:mod:`.protocols` (leave-one-target-out / leave-one-family-out), :mod:`.predictor` (the
``affinity`` predictor of :mod:`taskscout.predictors`).
"""

from taskscout.affinity import predictor as predictor  # registers the ``affinity`` predictor
