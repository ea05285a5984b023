import pytest

from openfunction.cli import parse_options
from openfunction.errors import ConfigError
from openfunction.signature import SignatureType


def test_defaults():
    options = parse_options([], {})
    assert options.source == "main.py" and options.target == ""
    assert options.host == "0.0.0.0" and options.port is None
    assert options.signature is None and not options.debug and not options.dry_run
    assert options.grace_period == 30.0 and options.log_level == "INFO"


def test_env_is_read():
    options = parse_options([], {
        "FUNCTION_TARGET": "t", "FUNCTION_SOURCE": "src.py", "FUNCTION_SIGNATURE_TYPE": "cloudevent",
        "HOST": "127.0.0.1", "PORT": "9000", "DEBUG": "true", "DRY_RUN": "1",
        "GRACEFUL_SHUTDOWN_TIMEOUT": "5",
    })
    assert (options.target, options.source, options.signature) == ("t", "src.py", SignatureType.CLOUDEVENT)
    assert (options.host, options.port, options.debug, options.dry_run) == ("127.0.0.1", 9000, True, True)
    assert options.grace_period == 5.0 and options.log_level == "DEBUG"


def test_flags_win_over_env():
    options = parse_options(
        ["--target", "flag", "--port", "1234", "--signature-type", "openfunction"],
        {"FUNCTION_TARGET": "env", "PORT": "9000", "FUNCTION_SIGNATURE_TYPE": "http"},
    )
    assert options.target == "flag" and options.port == 1234
    assert options.signature is SignatureType.OPENFUNCTION


def test_openfunction_build_env_names_are_fallbacks():
    options = parse_options([], {"FUNC_NAME": "f", "FUNC_SRC": "app.py"})
    assert options.target == "f" and options.source == "app.py"


@pytest.mark.parametrize("argv, env, message", [
    (["--port", "0"], {}, "--port is invalid"),
    ([], {"PORT": "x"}, "PORT is invalid"),
    ([], {"DEBUG": "maybe"}, "DEBUG is invalid"),
    ([], {"LOG_LEVEL": "loud"}, "LOG_LEVEL is invalid"),
    (["--grace-period", "-1"], {}, "--grace-period is invalid"),
    ([], {"GRACEFUL_SHUTDOWN_TIMEOUT": "nan"}, "GRACEFUL_SHUTDOWN_TIMEOUT is invalid"),
    ([], {"GRACEFUL_SHUTDOWN_TIMEOUT": "inf"}, "GRACEFUL_SHUTDOWN_TIMEOUT is invalid"),
    ([], {"PORT": "\u00b2"}, "PORT is invalid"),
    (["--signature-type", "rpc"], {}, "--signature-type is invalid"),
])
def test_invalid_values_name_the_flag_or_env(argv, env, message):
    with pytest.raises(ConfigError, match=message):
        parse_options(argv, env)
