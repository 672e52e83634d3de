"""MONAI Deploy for the collection: microscopy I/O operators and an application running any bundle.

Needs the ``deploy`` extra (``pip install -e .[deploy]``: monai-deploy-app-sdk, which brings holoscan). The
bundle split (``common.deploy.pipeline``) imports no SDK module; the operators and the application do.
"""
