from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0007_progress"),
    ]

    operations = [
        migrations.CreateModel(
            name="MinuteRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("minute", models.DateTimeField(unique=True)),
                ("hour", models.DateTimeField()),
                ("succeeded", models.PositiveIntegerField(default=0)),
                ("failed", models.PositiveIntegerField(default=0)),
                ("retried", models.PositiveIntegerField(default=0)),
                ("due", models.PositiveIntegerField(null=True)),
                ("lag", models.FloatField(help_text="Seconds the oldest due task had waited.", null=True)),
            ],
        ),
    ]
