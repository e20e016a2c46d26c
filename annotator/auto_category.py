"""The category that accepted auto-segment proposals get. No Qt here.

A full-image segmentation knows where objects are, not what they are, so its proposals never take the category
picked for clicking (with "car" picked, the sky would be labelled "car"). They are accepted into the category the
person chose for auto-segment (a project setting), else into an "uncategorised" category made on first use; the
person re-labels them later (select, 1-9) or picks a category for the one under review.
"""
from __future__ import annotations

from typing import Optional

UNCATEGORISED = "uncategorised"
UNCATEGORISED_COLOR = (150, 150, 150)  # grey: reads as "not decided yet" beside the saturated category colours
SETTING = "auto_segment_category_id"


def chosen_category(project) -> Optional[int]:
    """The category chosen for auto-segment proposals (still in the project), else None."""
    cid = project.settings.get(SETTING)
    if isinstance(cid, int) and any(c.id == cid for c in project.categories):
        return cid
    return None


def auto_segment_category_name(project) -> str:
    """The name accepted auto-segment proposals get, without making any category."""
    cid = chosen_category(project)
    return project.category(cid).name if cid is not None else UNCATEGORISED


def auto_segment_category(project) -> int:
    """The id accepted auto-segment proposals get: the chosen category, else "uncategorised" (made if missing;
    an undo step like any new category)."""
    cid = chosen_category(project)
    if cid is not None:
        return cid
    for c in project.categories:
        if c.name == UNCATEGORISED:
            return c.id
    return project.add_category(UNCATEGORISED, UNCATEGORISED_COLOR, isthing=True)


def set_auto_segment_category(project, category_id: Optional[int]) -> None:
    """Choose the category for auto-segment proposals (None: "uncategorised"); remembered with the project."""
    if category_id is not None and not any(c.id == category_id for c in project.categories):
        raise KeyError(f"no category with id {category_id}")
    project.set_setting(SETTING, category_id)
