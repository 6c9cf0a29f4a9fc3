from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('taskq', '0004_due_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='task',
            name='uid',
            field=models.CharField(editable=False, max_length=191, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='task',
            name='history',
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
    ]
