"""An OpenFunction-signature function: `ctx` is the function context (outputs,
state), `data` the request's payload (parsed JSON for a JSON body)."""


def main(ctx, data):
    return {"echo": data}
