"""``manage.py client_billing_rotate_smtp_key``: re-encrypt SMTP passwords with the new key.

To rotate: put the new Fernet key in ``SMTP_ENCRYPTION_KEY`` and the old one(s) in
``SMTP_PREVIOUS_ENCRYPTION_KEYS``, deploy, run this command, then drop the old keys.
Passwords that no configured key can read are listed (by site, never by value) and
left as they are; an editor must enter them again.
"""

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError

from ...models import ClientBillingSettings, _fernet


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored SMTP password with the current SMTP_ENCRYPTION_KEY "
        "(old keys are read through SMTP_PREVIOUS_ENCRYPTION_KEYS)."
    )

    def handle(self, *args, **options):
        fernet = _fernet()
        rotated, unreadable = 0, []
        stored = ClientBillingSettings.objects.exclude(smtp_password_encrypted="").select_related(
            "site"
        )
        for config in stored.iterator():
            old = config.smtp_password_encrypted
            try:
                new = fernet.rotate(old.encode()).decode()
            except InvalidToken:
                unreadable.append(str(config.site))
                continue
            # Only if nobody changed the password meanwhile.
            rotated += ClientBillingSettings.objects.filter(
                pk=config.pk, smtp_password_encrypted=old
            ).update(smtp_password_encrypted=new)
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {rotated} SMTP password{'s' if rotated != 1 else ''}."
            )
        )
        if unreadable:
            raise CommandError(
                "No configured key decrypts the SMTP password of: "
                + ", ".join(unreadable)
                + ". Add the key it was encrypted with to SMTP_PREVIOUS_ENCRYPTION_KEYS, "
                "or have an editor enter the password again."
            )
