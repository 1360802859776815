from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(max_length=10000, blank=True, default="")
    # Filled in by the count_words job (jobs.py) after each create or update.
    word_count = models.IntegerField(null=True, blank=True, editable=False)
    # Indexed: the list endpoint pages through notes newest first.
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "notes"
        ordering = ("-created_at", "-id")

    def __str__(self):
        return self.title

    def as_json(self):
        return {
            "id": self.pk,
            "title": self.title,
            "body": self.body,
            "word_count": self.word_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
