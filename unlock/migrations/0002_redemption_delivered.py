from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("unlock", "0001_initial")]

    operations = [
        # Redemptions made before this field existed were delivered: they get True, new ones False.
        migrations.AddField(
            model_name="redemption",
            name="delivered",
            field=models.BooleanField(default=True, verbose_name="delivered"),
        ),
        migrations.AlterField(
            model_name="redemption",
            name="delivered",
            field=models.BooleanField(default=False, verbose_name="delivered"),
        ),
    ]
