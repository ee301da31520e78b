"""What the snippet viewsets share: their objects come from the user's access scope.

Out of the box Wagtail's snippet chooser checks no permission of the model and lists every
row of every site, and its history and usage views load their object by its key alone.
Each viewset of the app (invoices, tax rates, the catalogue) names the one function of
:mod:`.scope` that says which of its objects a user may see, and these build its views
from it: a page or snippet with a foreign key to one of them cannot show an editor the
rows of sites they may not bill for, and another site's object is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.snippets.views import chooser as chooser_views

#: ``objects(user)``: the rows of a model that ``user`` may see.
ObjectsForUser = Callable[[Any], QuerySet[Any]]


def scoped_object_view(view_class: type, objects: ObjectsForUser) -> type:
    """``view_class`` (Wagtail's history or usage view, which load their object with
    ``get_object`` alone: their ``get_queryset`` is the list they show) loading the object
    of the URL from ``objects(user)``, or 404."""

    def get_object(self: Any, queryset: Any = None) -> Any:
        pk = unquote(str(self.kwargs[getattr(self, "pk_url_kwarg", "pk")]))
        return get_object_or_404(objects(self.request.user), pk=pk)

    return type(f"Scoped{view_class.__name__}", (view_class,), {"get_object": get_object})


def scoped_chooser_viewset(
    model: type,
    objects: ObjectsForUser,
    *,
    listed: ObjectsForUser | None = None,
    policy: Callable[[], Any] | None = None,
) -> type[chooser_views.SnippetChooserViewSet]:
    """Wagtail's snippet chooser for ``model``, limited like the model's other screens.

    Only a user with one of the model's permissions of ``policy()`` (its
    ``ModelPermissionPolicy`` by default) opens it; it lists ``listed(user)`` (default
    ``objects``) and picks only among ``objects(user)``. It offers no creation: each
    model is made on its own form, whose checks a chooser modal has none of.
    """

    class Scoped:
        request: Any

        def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            permissions = policy() if policy is not None else ModelPermissionPolicy(model)
            if not permissions.user_has_any_permission(
                request.user, {"add", "change", "delete", "view"}
            ):
                raise PermissionDenied
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

        def get_object_list(self) -> QuerySet[Any]:
            return (listed or objects)(self.request.user)

        def get_object(self, pk: Any) -> Any:
            if not str(pk).isdigit():  # a hostile id is "not found", never a server error
                raise model.DoesNotExist  # type: ignore[attr-defined]
            return objects(self.request.user).get(pk=pk)

        def get_objects(self, pks: Any) -> QuerySet[Any]:
            return objects(self.request.user).filter(pk__in=[p for p in pks if str(p).isdigit()])

        def can_create(self) -> bool:
            # Wagtail offers creation to anyone with the add permission.
            return False

    def view(base: type) -> type:
        return type(f"{model.__name__}{base.__name__}", (Scoped, base), {})

    class ScopedChooserViewSet(chooser_views.SnippetChooserViewSet):
        choose_view_class = view(chooser_views.ChooseView)
        choose_results_view_class = view(chooser_views.ChooseResultsView)
        chosen_view_class = view(chooser_views.SnippetChosenView)
        chosen_multiple_view_class = view(chooser_views.SnippetChosenMultipleView)
        create_action_label = None

        def get_urlpatterns(self) -> list[Any]:
            return [
                pattern
                for pattern in super().get_urlpatterns()
                if getattr(pattern, "name", None) != "create"
            ]

    ScopedChooserViewSet.__name__ = ScopedChooserViewSet.__qualname__ = (
        f"{model.__name__}ChooserViewSet"
    )
    return ScopedChooserViewSet


def inspect_title_column(
    view: Any, column_class: type, name: str, label: Any, sort_key: str
) -> Any:
    """A listing's title column (``name``, sorted by ``sort_key``) that opens the object's
    inspect page, not its edit form: the invoices' and the clients' listings."""
    column_class = view._get_title_column_class(column_class)
    return column_class(
        name,
        label=label,
        sort_key=sort_key,
        get_url=view.get_inspect_url,
        get_title_id=lambda instance: f"snippet_{quote(instance.pk)}_title",
    )
