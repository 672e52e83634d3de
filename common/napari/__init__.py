"""napari plugin of the collection (npe2 manifest ``napari.yaml``): a widget that runs a bundle on an image layer and
a reader of the bundles' TIFF / OME-TIFF outputs with their pixel sizes.

Needs the ``napari`` extra (``pip install -e .[napari]``). ``common.napari.inference`` and ``common.napari.reader``
import no napari module; ``common.napari.widget`` does. The subpackage imports nothing here, so that napari's plugin
discovery stays cheap.
"""
