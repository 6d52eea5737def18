"""Training, evaluation and ONNX export of LeukView's cell classifiers.

Needs the ``train`` extra (torch, timm, xgboost, ...); the app never imports
this package. Crops always come from :func:`leukview.core.preprocess.crop_cell`
and :func:`leukview.core.preprocess.normalize`, so a trained model sees the
same pixels in training and in the app.

Entry points::

    python -m training.train CONFIG.toml      # train and evaluate
    python -m training.export RUN_DIR --out models/NAME
    python -m training.compare CONFIG.toml --models effnet-lite0 mobilenetv3
"""
