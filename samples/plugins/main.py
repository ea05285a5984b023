"""A function whose invocations are wrapped by plugins (see plugins/audit.py)."""


def hello(request):
    name = request.args.get("name", "World")
    return {"greeting": f"Hello, {name}!"}
