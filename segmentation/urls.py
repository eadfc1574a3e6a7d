from django.urls import path

from segmentation import views

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/", views.create_job, name="create_job"),
    path("jobs/<str:token>/", views.job_page, name="job"),
    path("jobs/<str:token>/status", views.job_status, name="job_status"),
    path("jobs/<str:token>/preview", views.preview, name="job_preview"),
    path("jobs/<str:token>/before", views.before, name="job_before"),
    path("jobs/<str:token>/people", views.choose_people, name="job_people"),
    path("jobs/<str:token>/people/<int:person>", views.person, name="job_person"),
    path("jobs/<str:token>/unlock", views.unlock, name="job_unlock"),
    path("jobs/<str:token>/download", views.download, name="job_download"),
    path("jobs/<str:token>/delete", views.delete, name="job_delete"),
]
