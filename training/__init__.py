"""Credit-risk model training: schema, validation, training, evaluation, gate and registry."""

__version__ = "0.1.0"
