"""Shared code of the microscopy MONAI bundle collection.

Subpackages: ``io`` (readers, datalists), ``data`` (synthetic datasets), ``transforms``, ``losses``,
``networks``, ``flows`` (cellpose-style flow fields), ``postprocess``, ``baselines``, ``inferers``, ``metrics``,
``handlers``, ``bundle`` (bundle tooling) and ``deploy`` (MONAI Deploy operators).
"""

__version__ = "0.1.0"
