"""The app's own audit log table, so that Wagtail's Site history report can be limited
to the sites an editor may bill for.

Existing entries of invoices, Client Billing settings and Stripe accounts move from
Wagtail's ``ModelLogEntry`` to the new table in two set-based statements (and back when
the migration is reversed), so a log of millions of rows moves without loading it.
"""

import django.core.serializers.json
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

APP = "wagtail_client_billing"
#: The models whose entries live in the app's table (content type model names).
LOGGED = ("invoice", "clientbillingsettings", "stripeaccount")
COLUMNS = (
    "content_type_id",
    "label",
    "action",
    "data",
    "timestamp",
    "uuid",
    "user_id",
    "revision_id",
    "content_changed",
    "deleted",
    "object_id",
)


def _move(apps, schema_editor, source, target):
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    ids = list(
        content_types.filter(app_label=APP, model__in=LOGGED).values_list("pk", flat=True)
    )
    if not ids:
        return
    qn = schema_editor.connection.ops.quote_name
    source_table = qn(apps.get_model(*source)._meta.db_table)
    target_table = qn(apps.get_model(*target)._meta.db_table)
    columns = ", ".join(qn(column) for column in COLUMNS)
    where = f"{qn('content_type_id')} IN ({', '.join(['%s'] * len(ids))})"
    with schema_editor.connection.cursor() as cursor:
        # Only quoted identifiers are interpolated; the ids are parameters.
        cursor.execute(
            f"INSERT INTO {target_table} ({columns}) "  # noqa: S608
            f"SELECT {columns} FROM {source_table} WHERE {where} ORDER BY {qn('id')}",
            ids,
        )
        cursor.execute(f"DELETE FROM {source_table} WHERE {where}", ids)  # noqa: S608


def to_app_table(apps, schema_editor):
    _move(apps, schema_editor, ("wagtailcore", "ModelLogEntry"), (APP, "ClientBillingLogEntry"))


def to_wagtail_table(apps, schema_editor):
    _move(apps, schema_editor, (APP, "ClientBillingLogEntry"), ("wagtailcore", "ModelLogEntry"))


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('wagtail_client_billing', '0005_invoice_checkout_amounts'),
        ('wagtailcore', '0089_log_entry_data_json_null_to_object'),  # in every Wagtail >= 6.0
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ClientBillingLogEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('label', models.TextField()),
                ('action', models.CharField(blank=True, db_index=True, max_length=255)),
                ('data', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('timestamp', models.DateTimeField(db_index=True, verbose_name='timestamp (UTC)')),
                ('uuid', models.UUIDField(blank=True, editable=False, help_text='Log entries that happened as part of the same user action are assigned the same UUID', null=True)),
                ('content_changed', models.BooleanField(db_index=True, default=False)),
                ('deleted', models.BooleanField(default=False)),
                ('object_id', models.CharField(max_length=255)),
                ('content_type', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='contenttypes.contenttype', verbose_name='content type')),
                ('revision', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='wagtailcore.revision')),
                ('user', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'client billing log entry',
                'verbose_name_plural': 'client billing log entries',
                'ordering': ['-timestamp', '-id'],
                'indexes': [models.Index(fields=['content_type', 'object_id'], name='wcb_log_object'), models.Index(fields=['uuid', 'action', '-timestamp'], name='wcb_log_uuid_action')],
            },
        ),
        migrations.RunPython(to_app_table, to_wagtail_table),
    ]
