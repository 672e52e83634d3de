"""Parameter-free stand-ins for a bundle's network, built from post-processing steps, that run through the same
evaluator so a trained network is compared with them; a package of their own since they are neither networks
(which sit below ``postprocess``) nor post-processing."""

from .threshold import ThresholdBaseline
