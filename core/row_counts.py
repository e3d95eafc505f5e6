"""A count of each listed row's related rows, read for the rows of the page only.

``annotate(n=Count("files"))`` joins every row of the list to every related row and groups them
all before the page is cut (and a second ``Count(..., distinct=True)`` multiplies the two joins: a
workspace of 10,000 files and 5,000 threads is 50 million joined rows); the page's count query
groups them all again. ``related_count`` is a correlated subquery instead: computed for the rows of
the page only, left out of the count query, the same number. It counts the related table alone
(``SELECT COUNT(*) … WHERE workspace_id = outer.id``), an index-only scan of the row's entries: a
count grouped through a join to the listed table again let the planner read the whole related table
for every row of the page whenever one row had most of it (one workspace's 10,000 files: 56 ms for
a page of 100 instead of 0.3).
"""

from __future__ import annotations

from django.db.models import Func, IntegerField, Model, OuterRef, Subquery


def related_count(model: type[Model], relation: str) -> Subquery:
    """The number of rows related to each listed row of ``model`` through ``relation`` (a reverse
    foreign key's name, as ``Count`` takes it): ``annotate(file_count=related_count(Workspace, "files"))``."""
    reverse = model._meta.get_field(relation)
    related, foreign_key = reverse.related_model, reverse.remote_field
    if not reverse.one_to_many or related is None or isinstance(related, str) or foreign_key is None:
        raise ValueError(f"{model.__name__}.{relation} is not a reverse foreign key")
    counted = (
        related._base_manager.filter(**{foreign_key.name: OuterRef(foreign_key.target_field.attname)})
        .order_by()
        .annotate(count=Func(template="COUNT(*)", output_field=IntegerField()))  # no GROUP BY: one count
        .values("count")
    )
    return Subquery(counted, output_field=IntegerField())
