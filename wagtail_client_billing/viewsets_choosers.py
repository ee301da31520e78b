"""Wagtail's snippet chooser, limited to what an editor may see: one builder for every
chooser of the app's scoped snippets.

Out of the box a snippet chooser checks no permission of the model and lists, accepts and
reads back every object. :func:`scoped_chooser_viewset` builds the chooser viewset whose
four views answer only to users ``allowed`` lets in and see only ``objects(user)``; an id
that is not a number is "not found", never a server error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from wagtail.snippets.views import chooser as chooser_views


class ScopedChooserMixin:
    """The views' shared part: ``objects`` and ``allowed`` are set by the builder."""

    request: Any
    model: Any

    @staticmethod
    def objects(user: Any) -> QuerySet[Any]:  # pragma: no cover - always replaced
        raise NotImplementedError

    @staticmethod
    def allowed(user: Any) -> bool:  # pragma: no cover - always replaced
        raise NotImplementedError

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.allowed(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_object_list(self) -> QuerySet[Any]:
        return self.objects(self.request.user)

    def get_object(self, pk: Any) -> Any:
        if not str(pk).isdigit():
            raise self.model.DoesNotExist
        return self.objects(self.request.user).get(pk=pk)

    def get_objects(self, pks: Any) -> QuerySet[Any]:
        return self.objects(self.request.user).filter(pk__in=[p for p in pks if str(p).isdigit()])


def scoped_chooser_viewset(
    objects: Callable[[Any], QuerySet[Any]], allowed: Callable[[Any], bool]
) -> type[chooser_views.SnippetChooserViewSet]:
    """A snippet chooser viewset class (for a ``SnippetViewSet.chooser_viewset_class``)
    that offers, accepts and reads back only ``objects(user)``, to users ``allowed(user)``
    lets in, and has no "create" URL (the model's own add screen records who added it)."""
    scope = type(
        "Scoped",
        (ScopedChooserMixin,),
        {"objects": staticmethod(objects), "allowed": staticmethod(allowed)},
    )

    def view(base: type) -> type:
        return type(base.__name__, (scope, base), {})

    class ScopedChooserViewSet(chooser_views.SnippetChooserViewSet):
        choose_view_class = view(chooser_views.ChooseView)
        choose_results_view_class = view(chooser_views.ChooseResultsView)
        chosen_view_class = view(chooser_views.SnippetChosenView)
        chosen_multiple_view_class = view(chooser_views.SnippetChosenMultipleView)
        create_action_label = None

        def get_urlpatterns(self) -> list[Any]:
            return [p for p in super().get_urlpatterns() if getattr(p, "name", None) != "create"]

    return ScopedChooserViewSet
