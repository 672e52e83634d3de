"""Networks MONAI lacks, helpers for configuring MONAI's, and loading their weights from files."""

from .attention_res_unet import AttentionGate, AttentionResUNet
from .batch_norm import with_batch_norm_momentum
from .efficientnet_unet import SMP_FEATURE_BLOCKS, SMP_UNET_RULES, EfficientNetFeatures, EfficientNetUNet, UNetDecoder
from .ensemble import AverageEnsemble, ensemble_from_checkpoints
from .manet import MANetDecoder
from .mediar_former import MEDIAR_CHECKPOINT_RULES, MEDIARFormer
from .mix_transformer import MIT_IMAGENET_RULES, MIT_SIZES, MixTransformer
from .model_bank import MagnificationModels
from .weights import (
    PUBLISHED_FORMATS,
    available_checkpoints,
    load_pretrained,
    read_state_dict,
    register_published_format,
)
