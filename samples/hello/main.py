"""An HTTP function: the response body is whatever the function returns."""


def hello(request):
    return "Hello, World!\n"
