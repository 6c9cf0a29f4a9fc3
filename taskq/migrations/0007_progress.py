from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('taskq', '0006_unique_key'),
    ]

    operations = [
        migrations.AddField(
            model_name='task',
            name='progress',
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
    ]
