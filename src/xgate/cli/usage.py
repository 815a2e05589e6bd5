"""Usage errors in the command line's one error style, instead of typer's boxed panel.

click finds them while it parses a command line, before any command runs: an unknown option or command, a
missing argument, a value of the wrong type, an option without its value, an extra argument. The app's root
group (:class:`XgateGroup`, given to ``typer.Typer(cls=...)``) catches them where click's own
``make_context`` / ``invoke`` raise them and prints one line naming the option or argument and the reason,
then where to look::

    error: --value: 'abc' is not a valid float
    Try 'xgate track --help'.

with exit status 2 (:data:`xgate.cli.output.EXIT_USAGE`). typer vendors click and exports none of its usage
errors but ``BadParameter``, so the errors are told apart by what every one carries: click's ``exit_code``
(2 for a usage error) and the parameter (``param``) or option name (``option_name``) it names.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from xgate.cli.output import EXIT_USAGE, fail, usage_error


def describe(error: typer.TyperException) -> str:
    """``WHAT: REASON`` for one of click's usage errors: the option (its long name) or argument (as ``--help``
    shows it) and click's reason, without click's capital and full stop; click's message when it names no
    parameter (an unknown command, an extra argument)."""
    reason = error.message.rstrip(".")
    param = getattr(error, "param", None)
    option = getattr(error, "option_name", None)
    if param is not None:
        if param.param_type_name == "option":
            name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        else:
            name = param.get_error_hint(getattr(error, "ctx", None)).strip("'")
        if not reason:  # a missing one: click builds its message from the parameter alone
            reason = f"missing {param.param_type_name}"
        return f"{name}: {reason}"
    if option is not None:
        if hasattr(error, "possibilities"):  # an unknown option; click suggests the close ones
            possibilities = getattr(error, "possibilities", None) or ()
            hint = f"; did you mean {', '.join(sorted(possibilities))}?" if possibilities else ""
            return f"{option}: no such option{hint}"
        # "Option '--id' requires an argument." and the like
        return f"{option}: {_lower_first(reason.removeprefix(f'Option {option!r} '))}"
    return _lower_first(reason)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _report(error: typer.TyperException, command: str) -> NoReturn:
    if type(error).__name__ == "NoArgsIsHelpError":  # `xgate` or `xgate dlq` alone: the help, printed already
        raise error
    failing = getattr(error, "ctx", None)
    if failing is not None:
        command = failing.command_path
    if error.exit_code == EXIT_USAGE:
        usage_error(describe(error), command)
    fail(error.format_message())  # click's other errors (a file a typer.FileText could not open…)


class XgateGroup(TyperGroup):
    """The root ``xgate`` group: click's usage errors, from the root's own options or from any subcommand's
    (parsed inside :meth:`invoke`), end in :func:`xgate.cli.output.usage_error`."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as e:
            _report(e, info_name or "xgate")

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as e:
            # an error raised without a context (an option missing its value) is named by the subcommand
            _report(e, " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand))))
