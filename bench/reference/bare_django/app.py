"""WSGI entry point: `bare_django.app:application`."""

import os

import environ
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bare-reference-" + "x" * 40,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    # What `django-admin startproject` writes: the apps and middleware every
    # new Django project starts with (Django's defaults, which the generated
    # app keeps as they are), so the template is charged only for its own.
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "bare_django",
    ],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    # Persistent connections: Django's default (0) connects once per request.
    DATABASES={
        "default": {
            **environ.Env.db_url_config(os.environ["DATABASE_URL"]),
            "CONN_MAX_AGE": None,
        }
    },
    USE_TZ=True,
)

import django

django.setup()

from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path

from .models import Note


def hello(request):
    return JsonResponse({"message": "Hello, world"})


def select1(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"status": "ok"})


def note(request, pk):
    row = get_object_or_404(Note, pk=pk)
    return JsonResponse(
        {
            "id": row.id,
            "title": row.title,
            "body": row.body,
            "word_count": row.word_count,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


urlpatterns = [
    path("hello", hello),
    path("select1", select1),
    path("notes/<int:pk>", note),
]

application = get_wsgi_application()
