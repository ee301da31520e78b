"""A site that organises its admin with wagtail-modeladmin: its own ``ModelAdminGroup``
("Office", with a ``Supplier`` listing) beside this app. Its tests run in a pytest of
their own, with these settings: ``pytest --ds=tests.modeladmin_project.settings
tests/modeladmin_project`` (``make test`` and ``.ci/run`` do)."""
