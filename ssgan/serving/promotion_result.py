"""What one ``python -m ssgan.promote`` did (``PromotionResult``): the version it promoted or
the label it moved, what it recorded in MLflow, the labels it dropped, the versions it
listed and the bundle it wrote. :func:`ssgan.serving.promotion.describe` words it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PromotionResult:
    """The outcome of one promote. ``action`` says which: ``promote`` (a run into
    ``version``, or found ``already`` there), ``label`` (``label`` moved from ``previous``
    to ``version``), ``list`` (``versions``: one row per version) or ``bundle`` only.
    ``bundle`` is what :func:`ssgan.serving.bundle.write_bundle` wrote, when asked."""

    action: str
    version: int | None = None
    path: str = ""  # promote: the version's folder
    already: bool = False  # promote: the run was served already; nothing copied
    labels: list[str] = field(default_factory=list)  # promote: the labels on the version
    stable_version: int | None = None  # promote: the version labelled stable afterwards
    label: str = ""  # label: the label moved
    previous: int | None = None  # label: its version before (None: a new label)
    run_id: str = ""  # label: the run the version holds
    config: str = ""  # label: the models.config written
    recorded: list[str] = field(default_factory=list)  # MLflow records written
    removed_aliases: list[str] = field(default_factory=list)  # registry aliases removed
    dropped: dict[str, int] = field(default_factory=dict)  # labels whose version is gone
    versions: list[dict[str, Any]] = field(default_factory=list)  # list: the table's rows
    bundle: dict[str, Any] | None = None
