"""Room in ``Invoice.status`` for longer statuses (``partially_refunded`` and its kind).

A plain widening from 10 to 32 characters; the choices are the status table's, as
before (they are not stored in the database).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('wagtail_client_billing', '0008_invoice_counter'),
    ]

    operations = [
        migrations.AlterField(
            model_name='invoice',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('processing', 'Processing'), ('paid', 'Paid'), ('expired', 'Expired'), ('deleted', 'Deleted')], default='pending', editable=False, max_length=32, verbose_name='status'),
        ),
    ]
