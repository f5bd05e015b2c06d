"""The Grain-fed JAX/Flax trainer: configs, models, losses, checkpoints.

Builds on dataformat and vocabularies only; evaluators are found by the module
name their config gives (`trainer.evaluators`), so nothing here imports eval.
"""
