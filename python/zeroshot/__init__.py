"""zeroshot: exact, fast zero-shot classification with CLIP, SigLIP and CLAP, in-process.

The Hugging Face pipelines, same call shapes and numbers::

    import zeroshot
    clf = zeroshot.pipeline("zero-shot-image-classification", model="openai/clip-vit-base-patch32")
    clf("photo.jpg", candidate_labels=["cat", "dog"])       # [{"score": 0.91, "label": "cat"}, ...]

The engine underneath, for embeddings::

    model = zeroshot.Model("openai/clip-vit-base-patch32")  # or a model folder; precision="bf16" / "int8"
    model.embed_images(["a.jpg", "b.png"])                  # float32 (2, 512)
    model.embed_texts(["a dog"])
    zeroshot.ZeroShotClassifier(model, ["cat", "dog"]).classify_images(["a.jpg"])
    zeroshot.Index("photos.db", model, create=True).search("a red car")   # the CLI's photo index

Every engine failure raises zeroshot.Error (an Exception) with the CLI's one-line message; computations release
the GIL, so threads sharing one model run in parallel.
"""

from importlib.metadata import version as _metadata_version

from ._zeroshot import Error
from ._engine import (
    DEFAULT_AUDIO_TEMPLATE,
    DEFAULT_IMAGE_TEMPLATE,
    DEFAULT_MODEL,
    Model,
    Moderator,
    MultiLabelClassifier,
    ZeroShotClassifier,
)
from ._index import Index
from .pipelines import ZeroShotAudioClassificationPipeline, ZeroShotImageClassificationPipeline, pipeline

Error.__module__ = "zeroshot"  # shown as zeroshot.Error in tracebacks

__version__ = _metadata_version("zeroshot")  # the wheel's, which is CMakeLists.txt's project() version

__all__ = [
    "Error",
    "Model",
    "ZeroShotClassifier",
    "MultiLabelClassifier",
    "Moderator",
    "Index",
    "pipeline",
    "ZeroShotImageClassificationPipeline",
    "ZeroShotAudioClassificationPipeline",
    "DEFAULT_MODEL",
    "DEFAULT_IMAGE_TEMPLATE",
    "DEFAULT_AUDIO_TEMPLATE",
]
