"""lgd_tutorial: LGD networks (Local and Global Diffusion) for teaching and research.

The package holds everything the notebooks use: models (``lgd_tutorial.models``),
video data (``lgd_tutorial.data``), training and evaluation, and the tools that
show how global context diffuses into local feature maps (``lgd_tutorial.viz``).
"""

__version__ = "0.1.0"
