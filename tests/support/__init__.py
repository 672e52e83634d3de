"""Helpers of the test suite: the bundle CLI and specs (``bundles``), synthetic label images (``shapes``), reference
libraries imported around their torchvision dependency (``smp_reference``, ``cellpose_reference``), independent
recomputation of the bundles' metrics (``reference_metrics``), test-only ignite handlers (``recording``) and a small
MONAI training run (``engines``)."""
