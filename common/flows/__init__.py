"""Cellpose-style flow fields: computing them from instance labels and turning them back into instances.

Flows are (B, 2, H, W) float32 (dy, dx). The functions work on unit flows, as :func:`labels_to_flows` returns
them; cellpose and MEDIAR networks are trained to predict ``CELLPOSE_FLOW_SCALE`` (5) times these, so their
raw outputs go to :func:`flows_to_labels` with ``flow_scale=CELLPOSE_FLOW_SCALE`` and our flows train such
networks when multiplied by it (:class:`common.transforms.LabelsToFlows` and
:class:`common.postprocess.FlowsToLabels` do both). Everything runs on the device of its input, in torch,
batched over cells.

Two options select the variant a model was trained on: ``log_heat`` (gradient of log(1 + T): cellpose 2 and
MEDIAR) and ``neighbour_heat`` (edge flows see touching cells' heat: cellpose 2-4 and MEDIAR; with it
:func:`labels_to_flows` equals cellpose's ``masks_to_flows``). The defaults (cellpose 4's field, neighbours
count as zero heat) make ``flows_to_labels(labels_to_flows(labels))`` return the labels.

- :func:`labels_to_flows`: heat-diffusion flows of instance labels (:mod:`.heat`).
- :func:`follow_flows`: Euler steps from every foreground pixel (:mod:`.follow`).
- :func:`cluster_end_points`: end points to cells (:mod:`.cluster`).
- :func:`flow_error`, :func:`fill_holes`: clean-up (:mod:`.cleanup`).
- :func:`flows_to_labels`: the whole post-processing, tiled for large images (:mod:`.masks`).
"""

from .cleanup import fill_holes, flow_error
from .cluster import cluster_end_points
from .follow import follow_flows
from .heat import labels_to_flows
from .masks import CELLPOSE_FLOW_SCALE, flows_to_labels

__all__ = [
    "CELLPOSE_FLOW_SCALE",
    "cluster_end_points",
    "fill_holes",
    "flow_error",
    "flows_to_labels",
    "follow_flows",
    "labels_to_flows",
]
