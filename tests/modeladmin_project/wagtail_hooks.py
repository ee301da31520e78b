"""The site's admin menu the old way: a ModelAdminGroup, as many existing sites have."""

from wagtail_modeladmin.options import ModelAdmin, ModelAdminGroup, modeladmin_register

from .models import Supplier


class SupplierAdmin(ModelAdmin):
    model = Supplier
    menu_label = "Suppliers"
    list_display = ("name", "email")
    search_fields = ("name",)


class OfficeGroup(ModelAdminGroup):
    menu_label = "Office"
    menu_icon = "folder-open-inverse"
    menu_order = 250
    items = (SupplierAdmin,)


modeladmin_register(OfficeGroup)
