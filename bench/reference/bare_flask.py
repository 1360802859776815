"""WSGI entry point: `bare_flask:app`."""

import _sqla
from flask import Flask, abort

app = Flask(__name__)


@app.get("/hello")
def hello():
    return {"message": "Hello, world"}


@app.get("/select1")
def select1():
    _sqla.select1()
    return {"status": "ok"}


@app.get("/notes/<int:note_id>")
def note(note_id):
    row = _sqla.note_by_id(note_id)
    if row is None:
        abort(404)
    return row
