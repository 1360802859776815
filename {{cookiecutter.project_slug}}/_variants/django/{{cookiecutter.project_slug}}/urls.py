from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz),
    path("api/notes", views.note_collection),
    path("api/notes/<int:note_id>", views.note_detail),
    path("admin/", admin.site.urls),
]

# Errors are JSON like the rest of the API (used when DEBUG is off).
handler400 = "{{ cookiecutter.project_slug }}.views.bad_request"
handler403 = "{{ cookiecutter.project_slug }}.views.forbidden"
handler404 = "{{ cookiecutter.project_slug }}.views.not_found"
handler500 = "{{ cookiecutter.project_slug }}.views.server_error"
