"""ASGI entry point: `bare_fastapi:app` (sync views run in the threadpool, as the app's)."""

import _sqla
from fastapi import FastAPI, HTTPException

app = FastAPI()


@app.get("/hello")
def hello():
    return {"message": "Hello, world"}


@app.get("/select1")
def select1():
    _sqla.select1()
    return {"status": "ok"}


@app.get("/notes/{note_id}")
def note(note_id: int):
    row = _sqla.note_by_id(note_id)
    if row is None:
        raise HTTPException(status_code=404)
    return row
