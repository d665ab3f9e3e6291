"""The engine API: Model, ZeroShotClassifier, MultiLabelClassifier, Moderator.

Every method that computes releases the GIL, so several Python threads use the cores at once; a model and the
objects built on it are safe to share between threads. Engine failures raise :class:`zeroshot.Error` with the
CLI's one-line message; wrong argument types and shapes raise TypeError / ValueError before any work.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _inputs, _zeroshot

Error = _zeroshot.Error

DEFAULT_MODEL: str = _zeroshot.DEFAULT_MODEL
DEFAULT_IMAGE_TEMPLATE: str = _zeroshot.DEFAULT_IMAGE_TEMPLATE
DEFAULT_AUDIO_TEMPLATE: str = _zeroshot.DEFAULT_AUDIO_TEMPLATE

#: An image: a path, the bytes of an encoded file, a ``PIL.Image.Image`` or a numpy uint8 array (H, W, 3) / (H, W).
ImageInput = Any
#: An audio clip: a path, the bytes of an encoded file, or a 1-D float numpy array at the model's sampling rate.
AudioInput = Any


def _check_list(name: str, xs: Any, what: str) -> List[Any]:
    if isinstance(xs, (str, bytes)) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"{name} takes a list of {what}, not {type(xs).__name__}")
    return list(xs)


def _check_strings(name: str, xs: Any, *, allow_empty: bool = False) -> List[str]:
    xs = _check_list(name, xs, "strings")
    for x in xs:
        if not isinstance(x, str):
            raise TypeError(f"{name}: every entry must be a str, not {type(x).__name__} ({x!r})")
    if not xs and not allow_empty:
        raise ValueError(f"{name} is empty")
    return xs


def _check_int(name: str, x: Any, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(x).__name__}")
    if x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {x}")
    return int(x)


def _top_k(top_k: Optional[int]) -> int:
    return 0 if top_k is None else _check_int("top_k", top_k, 1)


def _classes(labels: Any) -> List[List[str]]:
    """Labels as the engine takes them: a list of str, or of lists of synonyms (the first one is shown)."""
    labels = _check_list("labels", labels, "strings (or lists of synonyms)")
    if not labels:
        raise ValueError("labels is empty")
    classes = []
    for x in labels:
        if isinstance(x, str):
            classes.append([x])
        elif isinstance(x, (list, tuple)) and x and all(isinstance(s, str) for s in x):
            classes.append(list(x))
        else:
            raise TypeError(f"labels: every entry must be a str or a non-empty list of str, not {x!r}")
    return classes


def _templates(templates: Any) -> List[str]:
    if templates is None:
        return []
    if isinstance(templates, str):
        templates = [templates]
    templates = _check_strings("templates", templates)
    for t in templates:
        if "{}" not in t:
            raise ValueError(f'template "{t}" has no "{{}}" for the label')
    return templates


def _cache_dir(cache_dir: Union[None, bool, str, "os.PathLike[str]"]) -> str:
    # None / True: the CLI's default cache folder; False: no cache; else that folder.
    if cache_dir is None or cache_dir is True:
        return ""
    if cache_dir is False:
        return "none"
    return os.fspath(cache_dir)


class Model:
    """A CLIP or CLAP model loaded from a Hugging Face model folder or hub id.

    >>> m = zeroshot.Model("openai/clip-vit-base-patch32")
    >>> m.embed_images(["photo.jpg"]).shape          # (1, 512) float32, projected, not normalized
    >>> m.embed_texts(["a dog", "a cat"])

    Args:
        name_or_path: a model folder, or a hub id looked up in the Hugging Face cache (downloaded if missing).
        precision: "f32" (exact), "bf16" or "int8" (faster), "int4" (least memory; see the README's "Precision and
            speed").
        threads: threads of the encoders; 0 = all cores.
        offline: never download (also ``HF_HUB_OFFLINE=1``).
        revision: the hub revision (hub ids only).
        progress: a download progress bar on stderr when it is a terminal.
        max_image_pixels: larger images are refused before they are decoded.
        max_audio_seconds: longer audio is refused.
        audio_crop: "middle" (deterministic) or "random" (Hugging Face's draws after ``np.random.seed(audio_seed)``).
        audio_seed: the seed for ``audio_crop="random"``.
    """

    def __init__(
        self,
        name_or_path: Union[str, "os.PathLike[str]"] = DEFAULT_MODEL,
        precision: str = "f32",
        threads: int = 0,
        offline: bool = False,
        *,
        revision: str = "main",
        progress: bool = False,
        max_image_pixels: int = 100_000_000,
        max_audio_seconds: float = 600.0,
        audio_crop: str = "middle",
        audio_seed: int = 0,
    ):
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise TypeError(f"name_or_path must be a str or os.PathLike, not {type(name_or_path).__name__}")
        if not isinstance(precision, str):
            raise TypeError(f"precision must be a str, not {type(precision).__name__}")
        threads = _check_int("threads", threads, -(2**31))
        self._m = _zeroshot.load_model(
            os.fspath(name_or_path),
            precision,
            threads,
            bool(offline),
            revision,
            bool(progress),
            _check_int("max_image_pixels", max_image_pixels, 1),
            float(max_audio_seconds),
            audio_crop,
            _check_int("audio_seed", audio_seed, 0),
        )
        self.precision = precision
        self._sampling_rate: Optional[int] = None

    def __repr__(self) -> str:
        return f"zeroshot.Model({self.name!r}, model_type={self.model_type!r}, precision={self.precision!r})"

    @property
    def name(self) -> str:
        """The name or path given to the constructor."""
        return self._m.name

    @property
    def directory(self) -> str:
        """The local folder the model's files were read from."""
        return self._m.directory

    @property
    def model_type(self) -> str:
        """config.json's model_type: "clip" or "clap"."""
        return self._m.model_type

    @property
    def modality(self) -> str:
        """"image" (CLIP) or "audio" (CLAP)."""
        return self._m.modality

    @property
    def fingerprint(self) -> str:
        """32 hex digits identifying what this model computes (files, weights samples, precision): a cache key."""
        return self._m.fingerprint

    @property
    def embedding_dim(self) -> int:
        """The projection dimension: the width of every embedding."""
        return self._m.embedding_dim

    @property
    def image_size(self) -> int:
        """The square input side of the vision tower (0 for audio models)."""
        return self._m.image_size

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale): multiplies cosines before the softmax (CLAP: the audio-vs-text scale)."""
        return self._m.logit_scale

    @property
    def default_template(self) -> str:
        """The pipeline's default hypothesis template for this modality."""
        return self._m.default_template

    @property
    def sampling_rate(self) -> int:
        """Audio models: the sampling rate numpy waveforms are taken at (preprocessor_config.json)."""
        if self._sampling_rate is None:
            rate = 0
            try:
                with open(os.path.join(self.directory, "preprocessor_config.json"), encoding="utf-8") as f:
                    rate = int(json.load(f).get("sampling_rate", 0))
            except (OSError, ValueError, TypeError):
                pass
            self._sampling_rate = rate or 48000
        return self._sampling_rate

    def tokenize(self, text: str) -> List[int]:
        """The token ids of one text (bos ... eos)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        return self._m.tokenize(text)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Projected, un-normalized text embeddings (``get_text_features``): float32 (n, embedding_dim)."""
        return self._m.embed_texts(_check_strings("texts", texts, allow_empty=True))

    def embed_images(self, images: Sequence[ImageInput], *, batch_size: int = 8) -> np.ndarray:
        """Projected, un-normalized image embeddings (``get_image_features``): float32 (n, embedding_dim).

        ``images``: a list of paths, bytes, PIL images or numpy uint8 arrays (or a uint8 array (n, H, W, 3)).
        Images are decoded on worker threads while the previous batch of ``batch_size`` is encoded.
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        items, names = _inputs.image_items(_check_list("images", images, "images"))
        return self._m.embed_images(items, names, _check_int("batch_size", batch_size, 1))

    def embed_pixel_values(self, pixel_values: np.ndarray) -> np.ndarray:
        """Image embeddings of already preprocessed images: float32 (n, 3, image_size, image_size), the image
        processor's ``pixel_values`` (resized, cropped, normalized). For callers with their own preprocessing."""
        a = np.asarray(pixel_values)
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"pixel_values must be a float array, not {a.dtype}")
        s = self.image_size
        if a.ndim != 4 or a.shape[1:] != (3, s, s):
            raise ValueError(f"pixel_values must have shape (n, 3, {s}, {s}), not {a.shape}")
        return self._m.embed_pixel_values(np.ascontiguousarray(a, dtype=np.float32))

    def embed_audio(self, audios: Sequence[AudioInput], *, batch_size: int = 8) -> np.ndarray:
        """Projected, un-normalized audio embeddings (CLAP ``audio_embeds``): float32 (n, embedding_dim).

        ``audios``: a list of paths, bytes, or 1-D float numpy arrays at :attr:`sampling_rate`.
        """
        audios = _check_list("audios", audios, "audio inputs")
        batch_size = _check_int("batch_size", batch_size, 1)
        if self.modality != "audio":
            raise Error(f"{self.name}: is an image model ({self.model_type}): it does not embed audio")
        with _inputs.AudioFiles(audios, self.sampling_rate) as files:
            try:
                return self._m.embed_audio_files(files.paths, batch_size)
            except Error as e:
                raise files.rename_error(e) from None

    def embed(self, inputs: Sequence[Any], *, batch_size: int = 8) -> np.ndarray:
        """embed_images or embed_audio, by :attr:`modality`."""
        if self.modality == "audio":
            return self.embed_audio(inputs, batch_size=batch_size)
        return self.embed_images(inputs, batch_size=batch_size)


def _embedding_matrix(embeddings: Any, dim: int) -> tuple[np.ndarray, bool]:
    """(float32 C-contiguous (n, dim), whether one vector was given)."""
    a = np.asarray(embeddings)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"embeddings must be a float array, not {a.dtype}")
    single = a.ndim == 1
    if single:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != dim:
        raise ValueError(f"embeddings must have shape ({dim},) or (n, {dim}), not {np.shape(embeddings)}")
    return np.ascontiguousarray(a, dtype=np.float32), single


class ZeroShotClassifier:
    """Labels x templates -> label embeddings computed once, then any number of inputs scored against them.

    Scores are the Hugging Face pipeline's: softmax over the labels of ``logit_scale * cosine``, sorted by score.
    With several templates, each label's prompt embeddings are L2-normalized, averaged and normalized again.

    >>> clf = zeroshot.ZeroShotClassifier(model, ["cat", "dog"], ["a photo of a {}."])
    >>> clf.classify_images(["photo.jpg"])        # [[{"score": 0.93, "label": "cat"}, {"score": 0.07, ...}]]

    Args:
        model: the :class:`Model`.
        labels: a list of str, or of lists of synonyms (the first is shown; all are ensembled).
        templates: one template or a list (each with "{}"); None: the model's default template.
        cache_dir: the label-embedding disk cache: None = the CLI's default folder ($XDG_CACHE_HOME/zeroshot),
            False = none, or a folder.
    """

    def __init__(
        self,
        model: Model,
        labels: Sequence[Union[str, Sequence[str]]],
        templates: Union[None, str, Sequence[str]] = None,
        *,
        cache_dir: Union[None, bool, str, "os.PathLike[str]"] = None,
    ):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a zeroshot.Model, not {type(model).__name__}")
        self.model = model
        self._c = _zeroshot.ZeroShotClassifier(model._m, _classes(labels), _templates(templates), _cache_dir(cache_dir))

    @property
    def labels(self) -> List[str]:
        return self._c.labels

    @property
    def templates(self) -> List[str]:
        return self._c.templates

    @property
    def label_embeddings(self) -> np.ndarray:
        """(n_labels, embedding_dim) float32, L2-normalized, read-only."""
        return self._c.label_embeddings

    @property
    def label_embeddings_cached(self) -> bool:
        """Whether the label embeddings were read from the disk cache."""
        return self._c.label_embeddings_cached

    def classify(self, embeddings: Any, top_k: Optional[int] = None) -> Any:
        """Scores for one embedding (a list of ``{"score", "label"}``) or for each row of an (n, dim) matrix."""
        e, single = _embedding_matrix(embeddings, self.model.embedding_dim)
        rows = [[{"score": s, "label": l} for l, s in r] for r in self._c.classify(e, _top_k(top_k))]
        return rows[0] if single else rows

    def cosines(self, embeddings: Any) -> np.ndarray:
        """Cosine similarity to each label, in label order: (n_labels,) or (n, n_labels)."""
        e, single = _embedding_matrix(embeddings, self.model.embedding_dim)
        c = self._c.cosines(e)
        return c[0] if single else c

    def classify_images(self, images: Sequence[ImageInput], top_k: Optional[int] = None, *, batch_size: int = 8):
        """One sorted list of ``{"score", "label"}`` per image."""
        return self.classify(self.model.embed_images(images, batch_size=batch_size), top_k)

    def classify_audio(self, audios: Sequence[AudioInput], top_k: Optional[int] = None, *, batch_size: int = 8):
        """One sorted list of ``{"score", "label"}`` per audio clip."""
        return self.classify(self.model.embed_audio(audios, batch_size=batch_size), top_k)


class MultiLabelClassifier:
    """Independent per-label scores (tagging), as ``zeroshot classify --multi-label``.

    Each label is a two-way zero-shot problem against a negative baseline (default: "something" and "an object"
    through the templates): ``p = sigmoid(logit_scale * (cos(x, label) - cos(x, negative)))``; flagged when
    ``p >= threshold`` (default 0.5). ``on="cosine"``: the raw cosine, with thresholds you calibrate.

    Args:
        thresholds: per label, a mapping label -> threshold (labels not in it use ``threshold``).
        negatives: the baseline's names; label_negatives: a mapping label -> its own negative name.
    """

    def __init__(
        self,
        model: Model,
        labels: Sequence[Union[str, Sequence[str]]],
        templates: Union[None, str, Sequence[str]] = None,
        *,
        on: str = "probability",
        threshold: Optional[float] = None,
        thresholds: Optional[Mapping[str, float]] = None,
        negatives: Optional[Sequence[str]] = None,
        label_negatives: Optional[Mapping[str, str]] = None,
        cache_dir: Union[None, bool, str, "os.PathLike[str]"] = None,
    ):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a zeroshot.Model, not {type(model).__name__}")
        classes = _classes(labels)
        names = [c[0] for c in classes]
        per_label: List[Optional[float]] = []
        if thresholds:
            unknown = set(thresholds) - set(names)
            if unknown:
                raise ValueError(f"thresholds: no label {sorted(unknown)[0]!r}")
            per_label = [None if thresholds.get(n) is None else float(thresholds[n]) for n in names]
        per_negative: List[str] = []
        if label_negatives:
            unknown = set(label_negatives) - set(names)
            if unknown:
                raise ValueError(f"label_negatives: no label {sorted(unknown)[0]!r}")
            per_negative = [label_negatives.get(n, "") for n in names]
        self.model = model
        self._c = _zeroshot.MultiLabelClassifier(
            model._m,
            classes,
            _templates(templates),
            on,
            None if threshold is None else float(threshold),
            per_label,
            [] if negatives is None else _check_strings("negatives", negatives),
            per_negative,
            _cache_dir(cache_dir),
        )

    @property
    def labels(self) -> List[str]:
        return self._c.labels

    @property
    def thresholds(self) -> List[float]:
        """The resolved threshold of each label, in label order."""
        return self._c.thresholds

    def tag(self, embeddings: Any, top_k: Optional[int] = None) -> Any:
        """``[{"label", "score", "threshold", "flagged"}, ...]`` sorted by score, for one embedding or each row."""
        e, single = _embedding_matrix(embeddings, self.model.embedding_dim)
        rows = [
            [{"label": l, "score": s, "threshold": t, "flagged": f} for l, s, t, f in r]
            for r in self._c.tag(e, self.model.embedding_dim, _top_k(top_k))
        ]
        return rows[0] if single else rows

    def tag_images(self, images: Sequence[ImageInput], top_k: Optional[int] = None, *, batch_size: int = 8):
        return self.tag(self.model.embed_images(images, batch_size=batch_size), top_k)

    def tag_audio(self, audios: Sequence[AudioInput], top_k: Optional[int] = None, *, batch_size: int = 8):
        return self.tag(self.model.embed_audio(audios, batch_size=batch_size), top_k)


class Moderator:
    """A moderation policy (TOML, as ``zeroshot moderate --policy``) over a model.

    >>> mod = zeroshot.Moderator(model, "examples/moderation-policy.toml")
    >>> mod.moderate_images(["photo.jpg"])
    [{"flagged": [{"category": "weapons", "score": 0.83, "threshold": 0.65}], "scores": {"weapons": 0.83, ...}}]

    Args:
        policy_path: the policy file; or ``policy``: the TOML text itself (``policy_path`` then only names it in
            error messages). A malformed policy raises zeroshot.Error "FILE:LINE: problem".
    """

    def __init__(
        self,
        model: Model,
        policy_path: Union[None, str, "os.PathLike[str]"] = None,
        *,
        policy: Optional[str] = None,
        cache_dir: Union[None, bool, str, "os.PathLike[str]"] = None,
    ):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a zeroshot.Model, not {type(model).__name__}")
        if policy_path is None and policy is None:
            raise ValueError("give policy_path (a TOML file) or policy (its text)")
        if policy is not None and not isinstance(policy, str):
            raise TypeError(f"policy must be the TOML text (str), not {type(policy).__name__}")
        path = "policy" if policy_path is None else os.fspath(policy_path)
        self.model = model
        self._m = _zeroshot.Moderator(model._m, path, policy, _cache_dir(cache_dir))

    @property
    def categories(self) -> List[str]:
        return self._m.categories

    def moderate(self, embeddings: Any) -> Any:
        """For one embedding (or each row): ``{"flagged": [{"category", "score", "threshold"}], "scores": {...}}``,
        categories in policy order."""
        e, single = _embedding_matrix(embeddings, self.model.embedding_dim)
        rows = []
        for r in self._m.moderate(e, self.model.embedding_dim):
            rows.append(
                {
                    "flagged": [{"category": c, "score": s, "threshold": t} for c, s, t, f in r if f],
                    "scores": {c: s for c, s, _, _ in r},
                }
            )
        return rows[0] if single else rows

    def moderate_images(self, images: Sequence[ImageInput], *, batch_size: int = 8) -> List[Dict[str, Any]]:
        return self.moderate(self.model.embed_images(images, batch_size=batch_size))

    def moderate_audio(self, audios: Sequence[AudioInput], *, batch_size: int = 8) -> List[Dict[str, Any]]:
        return self.moderate(self.model.embed_audio(audios, batch_size=batch_size))
