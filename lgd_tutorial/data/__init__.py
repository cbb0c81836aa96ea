"""Video data: decoding, Kinetics annotations and manifests, datasets and samplers, transforms, the synthetic set.

    from lgd_tutorial.data import ClipDataset, train_transform
    train = ClipDataset("data/synthetic/manifest_train.csv", mode="train", num_frames=8,
                        transform=train_transform(112))

Submodules: ``video`` (decoders), ``kinetics`` (annotations, class lists,
layouts, manifests), ``subsets``, ``clips`` (datasets and clip samplers),
``transforms``, ``encode`` (writing videos), ``synthetic`` (the teaching
dataset), ``transfer`` (UCF101 / HMDB51 splits), ``prepare`` (download,
validate, resize); the data benchmark is ``lgd_tutorial.experiments.bench_data``. Names load on
first use. The class lists and the shipped subset definitions are package
data (``kinetics.RESOURCES``).
"""

from ..utils import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "clips": ["ClipDataset", "FailureReport", "random_clip_indices", "tsn_indices", "uniform_clip_indices"],
    "video": ["VideoDecodeError", "VideoInfo", "open_video", "probe"],
    "kinetics": ["AnnotationError", "build_manifest", "clip_filename", "load_classes", "load_manifest",
                 "manifest_from_folders", "manifest_from_list", "read_annotations", "read_list_file", "save_manifest", "summarize_manifest", "write_annotations"],
    "subsets": ["SUBSETS_DIR", "SubsetSpec", "load_spec", "make_subset", "write_subset"],
    "transforms": ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "test_transform", "train_transform"],
    "encode": ["pattern_frames", "write_clip_videos", "write_video"],
    "transfer": ["hmdb51_manifests", "split_manifests", "ucf101_manifests"],
    "prepare": ["DownloadError", "download", "resize", "validate"],
})
