# The client portal's revocable links: the version a client's links carry.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0032_portal_configuration"),
    ]

    operations = [
        migrations.CreateModel(
            name="ClientPortalLinks",
            fields=[
                (
                    "client",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="portal_links",
                        serialize=False,
                        to="wagtail_client_billing.client",
                        verbose_name="client",
                    ),
                ),
                ("version", models.PositiveIntegerField(default=1, verbose_name="links version")),
                (
                    "revoked_at",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="portal links revoked"
                    ),
                ),
            ],
            options={
                "verbose_name": "client portal links",
                "verbose_name_plural": "client portal links",
            },
        ),
    ]
