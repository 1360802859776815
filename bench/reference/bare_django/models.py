from django.db import models


class Note(models.Model):
    """The generated app's table, read as is (the app's migrations created it)."""

    id = models.BigAutoField(primary_key=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    word_count = models.IntegerField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "notes"
        app_label = "bare_django"
