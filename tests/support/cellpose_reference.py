"""cellpose's own dynamics as the reference for ``common.flows`` (cellpose is not a dependency)."""


def import_cellpose_dynamics():
    """``cellpose.dynamics`` of an installed cellpose, for comparisons; raises ImportError if unavailable.

    cellpose imports torchvision only for augmentations in ``cellpose.transforms``, which the dynamics do
    not use. Where torchvision is missing (it is not a dependency of this project), a placeholder module
    stands in for it during the import and is removed afterwards.
    """
    import importlib
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("cellpose") is None:
        raise ImportError("cellpose is not installed")
    names = [
        "torchvision",
        "torchvision.transforms",
        "torchvision.transforms.functional",
        "torchvision.transforms._functional_tensor",
    ]
    stubbed = []
    if importlib.util.find_spec("torchvision") is None:
        for name in names:
            sys.modules[name] = types.ModuleType(name)
            stubbed.append(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
        sys.modules["torchvision.transforms"]._functional_tensor = sys.modules[
            "torchvision.transforms._functional_tensor"
        ]
    try:
        return importlib.import_module("cellpose.dynamics")
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
