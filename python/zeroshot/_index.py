"""The photo index: `zeroshot index` and `zeroshot search` for Python, on the same SQLite database."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _zeroshot
from ._engine import Model, _check_int, _check_list

PathLike = Union[str, "os.PathLike[str]"]


class Index:
    """An index of image embeddings (one SQLite file, one model), searched by text, image or a weighted mix.

    >>> idx = zeroshot.Index("photos.db", model, create=True)
    >>> idx.update(["~/Pictures"])                       # incremental: only new or changed files are embedded
    >>> idx.search("golden retriever")                   # [{"rank": 1, "path": "...", "score": 0.31}, ...]
    >>> idx.search("2:dog + ./pool.jpg - fruit")         # rclip's syntax: weights, images, + and -
    >>> idx.search(terms=[(2.0, "dog"), (1.0, pathlib.Path("pool.jpg")), (-1.0, "fruit")])

    Args:
        db: the database file; None: the CLI's default ($XDG_DATA_HOME/zeroshot/index.db).
        model: a :class:`zeroshot.Model`, a model name or folder, or None: the model the index was made with.
        create: create the database when it does not exist (else zeroshot.Error).
        reindex: empty an index made with another model and stamp it with this one.
        model_kwargs: :class:`zeroshot.Model` options when the model is loaded here.

    An index made with another model (or precision) is refused with zeroshot.Error, as in the CLI.
    """

    def __init__(
        self,
        db: Optional[PathLike] = None,
        model: Union[None, PathLike, Model] = None,
        *,
        create: bool = False,
        reindex: bool = False,
        **model_kwargs: Any,
    ):
        path = _zeroshot.default_index_path() if db is None else os.path.expanduser(os.fspath(db))
        if model is None:
            model = _zeroshot.index_model_name(path)
        if not isinstance(model, Model):
            model = Model(model, **model_kwargs)
        elif model_kwargs:
            raise TypeError(f"model options {sorted(model_kwargs)} given with an already loaded zeroshot.Model")
        self.model = model
        self._i = _zeroshot.Index(model._m, path, bool(create), bool(reindex))

    @property
    def path(self) -> str:
        return self._i.path

    def __len__(self) -> int:
        return len(self._i)

    def __repr__(self) -> str:
        return f"zeroshot.Index({self.path!r}, model={self.model.name!r})"

    def update(self, folders: Sequence[PathLike], *, exclude: Sequence[str] = (), batch_size: int = 16) -> Dict[str, Any]:
        """Brings the index in step with the folders (or files): new and changed images are embedded, renamed and
        copied ones reuse their rows, deleted ones are dropped. Returns the summary (``embedded``, ``unchanged``,
        ``renamed``, ``removed``, ``failures`` as ``[(path, error)]``, ...); unreadable files are listed, not raised."""
        roots = [os.path.expanduser(os.fspath(f)) for f in _check_list("folders", folders, "folders")]
        return self._i.update(roots, [str(e) for e in exclude], _check_int("batch_size", batch_size, 1))

    def search(
        self,
        query: Optional[str] = None,
        *,
        image: Union[None, PathLike, Sequence[PathLike]] = None,
        terms: Optional[Sequence[Tuple[float, Union[str, "os.PathLike[str]"]]]] = None,
        top_k: int = 10,
        folders: Optional[Sequence[PathLike]] = None,
    ) -> List[Dict[str, Any]]:
        """The ``top_k`` images most similar to the query, best first: ``[{"rank", "path", "score"}]`` (cosine).

        Args:
            query: text in rclip's syntax (``"2:dog + ./pool.jpg - fruit"``: terms joined by + and -, ``W:`` weights,
                a term naming an existing file or starting with ./ ../ / ~/ is an image).
            image: an image file (or a list) added to the query.
            terms: explicit ``(weight, text)`` / ``(weight, os.PathLike image)`` pairs; a negative weight subtracts.
            folders: search only images under these folders (default: the whole index).
        """
        parsed: List[Tuple[float, bool, str]] = []
        if query is not None or image is not None:
            if query is not None and not isinstance(query, str):
                raise TypeError(f"query must be a str, not {type(query).__name__}")
            images = [] if image is None else [image] if isinstance(image, (str, os.PathLike)) else list(image)
            words = [] if query is None else query.split()
            parsed += _zeroshot.parse_query(words, [os.fspath(i) for i in images])
        for t in terms or ():
            if not (isinstance(t, (tuple, list)) and len(t) == 2 and isinstance(t[0], (int, float))):
                raise TypeError(f"terms: every entry must be a (weight, text or os.PathLike) pair, not {t!r}")
            w, v = t
            if isinstance(v, os.PathLike):
                parsed.append((float(w), True, os.path.expanduser(os.fspath(v))))
            elif isinstance(v, str):
                parsed.append((float(w), False, v))
            else:
                raise TypeError(f"terms: a term must be a str (text) or os.PathLike (image), not {type(v).__name__}")
        if not parsed:
            raise ValueError("give a query, an image or terms")
        scope = [os.path.expanduser(os.fspath(f)) for f in folders] if folders else []
        hits = self._i.search(parsed, _check_int("top_k", top_k, 1), scope)
        return [{"rank": i + 1, "path": p, "score": s} for i, (p, s) in enumerate(hits)]
