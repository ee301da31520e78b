# The client portal's revocable links: a version per client that its links carry.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0032_portal_configuration"),
    ]

    operations = [
        migrations.AddField(
            model_name="client",
            name="portal_links_version",
            field=models.PositiveIntegerField(db_default=1, default=1, editable=False),
        ),
        migrations.AddField(
            model_name="client",
            name="portal_links_revoked_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="portal links revoked"
            ),
        ),
    ]
