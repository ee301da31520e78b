"""The app's URLs as a site includes them, plus the baselines' bare views."""

from django.urls import path

from tests.urls import urlpatterns as app_urlpatterns

from . import views

urlpatterns = [
    path("bench/bare-insert/", views.bare_insert, name="bench_bare_insert"),
    path("bench/bare-redirect/", views.bare_redirect, name="bench_bare_redirect"),
    *app_urlpatterns,
]
