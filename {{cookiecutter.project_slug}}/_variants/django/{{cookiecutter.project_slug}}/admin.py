from django.contrib import admin

from . import jobs
from .models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("title", "word_count", "created_at", "updated_at")
    search_fields = ("title", "body")
    readonly_fields = ("word_count", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        obj.word_count = None
        super().save_model(request, obj, form, change)
        jobs.count_words_later(obj.pk)
