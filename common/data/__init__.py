"""Data for training: synthetic datasets in every native layout (:mod:`.synthetic`) and what a run samples
(:mod:`.sampling`: several datasets together, amplified sampling, memory replay; :mod:`.flattened`: the samples
of cached multi-sample items one by one) and MEDIAR's modality discovery that writes the amplified sampling
(:mod:`.modalities`)."""

from .fail_soft import FAILED, FAILED_ERROR, FailSoftDataset
from .flattened import FlattenedDataset
from .modalities import amplified_repeats, cluster_embeddings, discover_modalities, encoder_embeddings
from .sampling import ReplayLoader, amplified_datalist, combined_datalist
