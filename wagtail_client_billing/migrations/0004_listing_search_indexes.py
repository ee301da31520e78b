"""Indexes for the invoice listing's search at a million invoices.

A search for a whole email address or invoice number is an exact match (the email in
any letter case), served by these B-tree indexes on PostgreSQL and SQLite alike; other
terms stay a substring search (trigram indexes of 0002 on PostgreSQL).
"""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0003_invoice_email_claimed_at"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                django.db.models.functions.text.Lower("email"), name="wcb_invoice_email_ci"
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(fields=["number"], name="wcb_invoice_number"),
        ),
    ]
