from django.db import migrations, models
{% if cookiecutter.database == "sqlite" %}
from huey.storage import SqliteStorage

# huey's own tables for the job queue, in the app's database (huey creates
# them with IF NOT EXISTS, so an existing queue is kept).
HUEY_TABLES = ["kv", "schedule", "task", "counter"]
{% endif %}


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("title", models.CharField(max_length=200)),
                ("body", models.TextField(blank=True, default="", max_length=10000)),
                (
                    "word_count",
                    models.IntegerField(blank=True, editable=False, null=True),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "db_table": "notes",
                "ordering": ("-created_at", "-id"),
            },
        ),
{% if cookiecutter.database == "sqlite" %}
        migrations.RunSQL(
            sql=list(SqliteStorage.ddl),
            reverse_sql=[f"DROP TABLE IF EXISTS {name}" for name in HUEY_TABLES],
        ),
{% endif %}
    ]
