"""Toy Models of Superposition (Elhage et al. 2022), rebuilt as one small research project.

Modules, one job each:

- :mod:`.data` — sparse synthetic features, importance schedules, one-/k-hot inputs, boolean targets.
- :mod:`.models` — the batched toy models (``ToyModel`` / ``Net`` / ``ResNet``).
- :mod:`.train` — the training loop (importance-weighted MSE or cross-entropy, schedules).
- :mod:`.analysis` — superposition measurements (norms, feature dimensionality, interference, ...).
- :mod:`.hessian` — Hessian spectra of the loss over training.
- :mod:`.phase` — the 2-features-in-1-dimension phase diagram, analytic and empirical.
- :mod:`.hysteresis` — sweeping a setting up and down with warm starts.
- :mod:`.figures` — the plots; :mod:`.make_figures` regenerates the full-size figures.
- :mod:`.sae_bridge` — train the library's SAE on a toy model's hidden layer.
- :mod:`.recipes` — the 20-in-5 study under seed 003's recipe and the project's, and the ablation.
- :mod:`.featurefinding` — FeatureFinding's own settings on all k-hot inputs; the vary-seed count.
- :mod:`.interactive` — plotly views over training and convex-hull tools.
"""
