"""LGD models: P3D building blocks, the LGD block, LGD-3D / LGD-2D, the kernelized classifier.

``build_model(name, num_classes, **overrides)`` builds a registered network;
``list_models()`` names them; ``inflate_from_2d`` loads ImageNet weights of a
torchvision ResNet into an LGD-3D; ``list_pretrained()`` / ``load_pretrained(name)``
give the teaching checkpoints shipped with the package.
"""

from .classifier import KernelizedClassifier
from .inflate import inflate_from_2d
from .lgd import DIFFUSIONS, LGD2D, LGD3D, LGDBlock, LGDNet
from .pretrained import PretrainedError, list_pretrained, load_pretrained
from .release import convert_release_state_dict, load_release_checkpoint, load_release_state_dict
from .summary import PARTS, count_flops, parameter_breakdown, summarize
from .registry import ModelInfo, build_model, diffusion_pairs, list_models, model_info

__all__ = ["DIFFUSIONS", "KernelizedClassifier", "LGD2D", "LGD3D", "LGDBlock", "LGDNet",
           "ModelInfo", "PARTS", "PretrainedError", "build_model", "convert_release_state_dict", "count_flops",
           "diffusion_pairs", "load_release_checkpoint", "load_release_state_dict",
           "inflate_from_2d", "list_models", "list_pretrained", "load_pretrained", "model_info", "parameter_breakdown",
           "summarize"]
