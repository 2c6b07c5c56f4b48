"""How SAE features and sparse feature circuits develop while the zoo model trains.

Checkpoints of the zoo model (`checkpoints`), an SAE per checkpoint and site (`saes`), Hungarian
matching of features across checkpoints (`matching`), the planted tasks' circuits at every
checkpoint (`circuits`), and the figures (`figures`). `python -m projects.circuit_development.run`
runs it all; see README.md beside this file.
"""
