from django.db import models


class Supplier(models.Model):
    """Something of the site's own, managed through wagtail-modeladmin."""

    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)

    def __str__(self) -> str:
        return self.name
