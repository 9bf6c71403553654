"""api/limits.py's BodyLimit as an ASGI middleware, driven directly: 413 before the app, or the whole body replayed."""

import asyncio
import json

from api.limits import BodyLimit


class App:
    """Records what reached it and reads the whole body the way an app would."""

    def __init__(self):
        self.bodies: list[bytes] = []
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run(app, chunks, *, headers=(), scope_type="http"):
    """Call app with the body in chunks; returns the messages it sent."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": scope_type, "headers": list(headers)}, receive, send))
    return sent


def test_a_body_within_the_cap_reaches_the_app_whole_even_in_chunks():
    app = App()
    sent = run(BodyLimit(app, 10), [b"hello", b" you!"])
    assert app.bodies == [b"hello you!"] and sent[0]["status"] == 200


def test_a_declared_length_over_the_cap_is_refused_before_anything_is_read():
    app = App()
    sent = run(BodyLimit(app, 10), [b"x" * 11], headers=[(b"content-length", b"11")])
    assert app.calls == 0 and sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert "10 bytes" in json.dumps(body)
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(sent[1]["body"])).encode()


def test_chunks_that_grow_past_the_cap_are_refused_without_a_declared_length():
    app = App()
    sent = run(BodyLimit(app, 10), [b"123456", b"789012"])
    assert app.calls == 0 and sent[0]["status"] == 413


def test_the_cap_itself_is_allowed():
    app = App()
    run(BodyLimit(app, 10), [b"x" * 10], headers=[(b"content-length", b"10")])
    assert app.bodies == [b"x" * 10]


def test_other_scopes_pass_through_untouched():
    app = App()
    assert run(BodyLimit(app, 1), [b"far too long"], scope_type="lifespan") == [] and app.calls == 1
