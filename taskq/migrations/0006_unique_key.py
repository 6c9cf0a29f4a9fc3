from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('taskq', '0005_uid_history'),
    ]

    operations = [
        migrations.AddField(
            model_name='task',
            name='unique_key',
            field=models.CharField(blank=True, editable=False, max_length=191, null=True),
        ),
        migrations.AddField(
            model_name='task',
            name='unique_live',
            field=models.GeneratedField(db_persist=True, expression=models.Case(models.When(status__in=['queued', 'running'], then=models.F('unique_key'))), output_field=models.CharField(max_length=191, null=True)),
        ),
        migrations.AddConstraint(
            model_name='task',
            constraint=models.UniqueConstraint(fields=('unique_live',), name='taskq_unique_live'),
        ),
    ]
