"""Hugging Face's zero-shot pipelines on the zeroshot engine: same call shapes, same outputs, same numbers.

Switching is a one-line change::

    # from transformers import pipeline
    from zeroshot import pipeline
    clf = pipeline("zero-shot-image-classification", model="openai/clip-vit-base-patch32")
    clf("photo.jpg", candidate_labels=["cat", "dog"])     # [{"score": 0.91, "label": "cat"}, ...]
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._engine import Model, ZeroShotClassifier, _check_int, _check_strings, _top_k

IMAGE_TASK = "zero-shot-image-classification"
AUDIO_TASK = "zero-shot-audio-classification"
# transformers' default checkpoints for the two tasks.
DEFAULT_MODELS = {IMAGE_TASK: "openai/clip-vit-base-patch32", AUDIO_TASK: "laion/clap-htsat-fused"}

Result = List[Dict[str, Any]]


class _ZeroShotPipeline:
    task = ""
    _modality = ""

    def __init__(self, model: Model, *, batch_size: int = 8, label_cache: Union[None, bool, str] = None):
        if model.modality != self._modality:
            other = IMAGE_TASK if model.modality == "image" else AUDIO_TASK
            raise ValueError(f"{model.name} is an {model.modality} model ({model.model_type}): use the {other!r} task")
        self.model = model
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self._label_cache = label_cache
        # Label embeddings per (labels, template), as transformers recomputes them on every call and we need not.
        self._classifiers: "collections.OrderedDict[Tuple[Tuple[str, ...], str], ZeroShotClassifier]" = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} task={self.task!r} model={self.model.name!r}>"

    def _classifier(self, labels: List[str], template: str) -> ZeroShotClassifier:
        key = (tuple(labels), template)
        with self._lock:
            clf = self._classifiers.get(key)
            if clf is not None:
                self._classifiers.move_to_end(key)
                return clf
        clf = ZeroShotClassifier(self.model, labels, [template], cache_dir=self._label_cache)
        with self._lock:
            self._classifiers[key] = clf
            while len(self._classifiers) > 32:
                self._classifiers.popitem(last=False)
        return clf

    def _is_batch(self, inputs: Any) -> bool:
        return isinstance(inputs, (list, tuple))

    def _run(self, inputs, candidate_labels, hypothesis_template, top_k, batch_size):
        if candidate_labels is None:
            raise ValueError("candidate_labels is required (a list of strings)")
        labels = _check_strings("candidate_labels", candidate_labels)
        if hypothesis_template is None:
            hypothesis_template = self.model.default_template
        if not isinstance(hypothesis_template, str):
            raise TypeError(f"hypothesis_template must be a str, not {type(hypothesis_template).__name__}")
        if "{}" not in hypothesis_template:
            raise ValueError(f'hypothesis_template "{hypothesis_template}" has no "{{}}" for the label')
        k = _top_k(top_k)
        batch = self.batch_size if batch_size is None else _check_int("batch_size", batch_size, 1)
        batched = self._is_batch(inputs)
        items = list(inputs) if batched else [inputs]
        clf = self._classifier(labels, hypothesis_template)
        embeddings = self.model.embed(items, batch_size=batch)
        results = clf.classify(embeddings, k or None) if items else []
        return results if batched else results[0]


class ZeroShotImageClassificationPipeline(_ZeroShotPipeline):
    """``transformers.ZeroShotImageClassificationPipeline`` on the zeroshot engine. Make one with
    ``zeroshot.pipeline("zero-shot-image-classification", model=...)``."""

    task = IMAGE_TASK
    _modality = "image"

    def __call__(
        self,
        images: Any,
        *,
        candidate_labels: Optional[Sequence[str]] = None,
        hypothesis_template: Optional[str] = None,
        top_k: Optional[int] = None,
        batch_size: Optional[int] = None,
    ) -> Union[Result, List[Result]]:
        """Scores of the candidate labels for an image, or for each image of a list.

        Args:
            images: one image, or a list of them. An image is a path (str or pathlib.Path), the bytes of an
                encoded file (JPEG, PNG, WebP, GIF, BMP), a ``PIL.Image.Image`` (any mode: EXIF-transposed and
                converted to RGB as transformers does) or a numpy uint8 array (H, W, 3) RGB or (H, W) grayscale.
            candidate_labels: the labels (a list of str).
            hypothesis_template: the prompt, "{}" standing for the label; default "This is a photo of {}.".
            top_k: keep only the best k labels (default: all).
            batch_size: images encoded together (default: the pipeline's, 8).

        Returns:
            For one image, a list of ``{"score": float, "label": str}`` sorted by score, highest first (softmax over
            the labels of ``logit_scale * cosine``); for a list of images, one such list per image.

        Raises:
            zeroshot.Error: an image or the model could not be read (a one-line message naming it).
            TypeError, ValueError: bad arguments (a non-string label, an empty label list, a float array...).
        """
        return self._run(images, candidate_labels, hypothesis_template, top_k, batch_size)


class ZeroShotAudioClassificationPipeline(_ZeroShotPipeline):
    """``transformers.ZeroShotAudioClassificationPipeline`` on the zeroshot engine. Make one with
    ``zeroshot.pipeline("zero-shot-audio-classification", model=...)``."""

    task = AUDIO_TASK
    _modality = "audio"

    def __call__(
        self,
        audios: Any,
        *,
        candidate_labels: Optional[Sequence[str]] = None,
        hypothesis_template: Optional[str] = None,
        top_k: Optional[int] = None,
        batch_size: Optional[int] = None,
    ) -> Union[Result, List[Result]]:
        """Scores of the candidate labels for an audio clip, or for each clip of a list.

        Args:
            audios: one clip, or a list of them. A clip is a path (str or pathlib.Path; WAV, FLAC, Ogg, MP3, ...
                decoded to mono at the model's rate as ffmpeg does), the bytes of such a file, or a 1-D float numpy
                array of samples at the model's sampling rate (48 kHz for CLAP).
            candidate_labels: the labels (a list of str).
            hypothesis_template: the prompt, "{}" standing for the label; default "This is a sound of {}.".
            top_k: keep only the best k labels (default: all).
            batch_size: clips encoded together (default: the pipeline's, 8).

        Returns:
            For one clip, a list of ``{"score": float, "label": str}`` sorted by score, highest first; for a list of
            clips, one such list per clip.
        """
        return self._run(audios, candidate_labels, hypothesis_template, top_k, batch_size)


def pipeline(
    task: Optional[str] = None,
    model: Union[None, str, "os.PathLike[str]", Model] = None,
    *,
    precision: str = "f32",
    threads: int = 0,
    offline: bool = False,
    revision: str = "main",
    batch_size: int = 8,
    label_cache: Union[None, bool, str] = None,
    device: Any = None,
    **model_kwargs: Any,
) -> Union[ZeroShotImageClassificationPipeline, ZeroShotAudioClassificationPipeline]:
    """A zero-shot classification pipeline, as ``transformers.pipeline`` makes one, on the zeroshot engine.

    >>> clf = zeroshot.pipeline("zero-shot-image-classification", model="openai/clip-vit-base-patch32")
    >>> clf("photo.jpg", candidate_labels=["cat", "dog"])
    [{'score': 0.91, 'label': 'cat'}, {'score': 0.09, 'label': 'dog'}]
    >>> audio = zeroshot.pipeline("zero-shot-audio-classification", model="laion/clap-htsat-unfused")
    >>> audio(waveform_48k, candidate_labels=["dog barking", "rain"])

    Args:
        task: "zero-shot-image-classification" (CLIP) or "zero-shot-audio-classification" (CLAP); None: chosen by
            the model's type.
        model: a Hugging Face hub id, a model folder, or a :class:`zeroshot.Model`; None: transformers' default
            for the task (openai/clip-vit-base-patch32, laion/clap-htsat-fused).
        precision: "f32" (exact, default), "bf16", "int8" or "int4".
        threads: encoder threads (0: all cores).
        offline: never download (also HF_HUB_OFFLINE=1).
        revision: hub revision.
        batch_size: inputs encoded together when a list is given.
        label_cache: the label-embedding disk cache: None = the CLI's default folder, False = none, or a folder.
        device: only None, "cpu" or -1 (the engine runs on the CPU).
        model_kwargs: further :class:`zeroshot.Model` options (max_image_pixels, audio_crop, ...).

    Call the result like transformers' pipeline: ``clf(inputs, candidate_labels=[...], hypothesis_template=...)``.
    """
    tasks = {IMAGE_TASK: ZeroShotImageClassificationPipeline, AUDIO_TASK: ZeroShotAudioClassificationPipeline}
    if task is not None and task not in tasks:
        raise ValueError(f"unknown task {task!r}: zeroshot has {sorted(tasks)}")
    if device not in (None, "cpu", -1):
        raise ValueError(f"device {device!r}: the zeroshot engine runs on the CPU (device=None or 'cpu')")
    if isinstance(model, Model):
        if model_kwargs:
            raise TypeError(f"model options {sorted(model_kwargs)} given with an already loaded zeroshot.Model")
        m = model
    else:
        if model is None:
            if task is None:
                raise ValueError("give a task or a model")
            model = DEFAULT_MODELS[task]
        m = Model(model, precision=precision, threads=threads, offline=offline, revision=revision, **model_kwargs)
    if task is None:
        task = IMAGE_TASK if m.modality == "image" else AUDIO_TASK
    return tasks[task](m, batch_size=batch_size, label_cache=label_cache)
