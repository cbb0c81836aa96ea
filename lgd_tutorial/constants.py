"""The package's choice lists and fixed numbers, in one module that imports nothing.

The configuration (``config.py``) validates against these lists without importing torch or any other part of
the package; the modules that implement a choice import its list from here, so a new choice is added once.
"""

DEVICES = ("auto", "cpu", "cuda")                             # ``utils.resolve_device``
BACKENDS = ("auto", "decord", "pyav")                         # ``data.video.open_video``
TEST_CROPS = (1, 3)              # views per clip at test time: a centre crop, or three along the long side
TEST_HEADS = ("combined", "local")    # the scores evaluated: local + global (the reconstruction), or local only
AVERAGES = ("softmax", "logits")                              # what is averaged over a video's views
KERNELS = ("linear", "gaussian")                              # ``models.classifier.KernelizedClassifier``
DIFFUSIONS = ("both", "local_to_global", "global_to_local", "none")     # ``models.lgd.LGDBlock``
MODALITIES = {"rgb": 3, "flow": 2}          # input channels: colour, or optical flow (x, y)
DATASETS = ("synthetic", "kinetics", "ucf101", "hmdb51")      # ``builders.build_datasets``
SAMPLINGS = ("clip", "tsn")                                   # 3D clips, or TSN segments (LGD-2D)
SCHEDULES = ("cosine", "step")                                # ``training.lr_at``
INITS = ("scratch", "imagenet")                               # ``builders.model_from_config``
AMP_MODES = ("auto", "bf16", "fp16", "off")                   # ``training.Trainer``
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Every name ``models.registry`` registers; registering a name missing here fails at import, so the
# configuration can check ``model.arch`` without building the registry (which needs torch).
ARCHITECTURES = ("gc_p3d_r50", "gc_p3d_tiny", "lgd2d_r50", "lgd2d_tiny", "lgd3d_r101", "lgd3d_r50", "lgd3d_tiny",
                 "nonlocal_p3d_r50", "nonlocal_p3d_tiny", "p3d_r50", "p3d_tiny", "se_p3d_r50", "se_p3d_tiny")
