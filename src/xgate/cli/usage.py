"""What the root ``xgate`` group adds to typer: usage errors in the command line's one error style (instead
of typer's boxed panel), and help texts a terminal shows as they read.

Help texts come from the commands' docstrings, written for the source as much as for ``--help``: wrapped at
the source's width, with literals between double backquotes (reStructuredText) or single ones (Markdown).
typer (rich markup mode) keeps a help text's single line breaks, so a docstring printed ragged (``(see the``
/ ``report)``) and broke the command list mid-sentence, and it printed the backquotes as they are.
:class:`XgateGroup` gives every command, group and option (subcommands of ``db``, ``dlq``… too) its help
through :func:`help_text`: each paragraph on one line (the terminal's width wraps it), literals in bold.

Usage errors:

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

A command finds the usage errors click cannot see itself (a value wrong in itself that no type expresses,
options that do not go together, a value needed from one of several places) and raises them with
:func:`bad_usage`: they end alike. The line between the two exit statuses: a command line wrong in itself
is a usage error (2); one that is well formed but names what the configuration, the outbox or the disk
does not have (an unknown source, a missing dead letter, a file that exists) is an error of another kind
(:func:`xgate.cli.output.fail`: 1, or 78 / 75 by who has to act), as ``git checkout no-such-branch`` is.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, NoReturn

import typer
from rich.markup import escape
from typer.core import TyperGroup

from xgate.cli.output import EXIT_USAGE, fail, usage_error

#: an inline literal: reStructuredText's ``text`` (or a role's :class:`Name`) or Markdown's `text`
_LITERAL = re.compile(r"(?P<role>:[\w:.-]+:)?(?P<ticks>``?)(?P<text>[^`]+?)(?P=ticks)")
#: strong text, in both: **text**
_STRONG = re.compile(r"\*\*(?P<text>[^*]+?)\*\*")


def _bold(match: re.Match[str]) -> str:
    text = match["text"]
    if match.groupdict().get("role") and text.startswith("~"):  # :func:`~a.b.name` reads "name"
        text = text.rsplit(".", 1)[-1]
    return f"[bold]{escape(text)}[/bold]"


def help_text(text: str) -> str:
    """``text`` (a docstring, an option's help) as rich markup for ``--help``: each paragraph on one line,
    inline literals and strong text in bold, their content never read as markup (``[x]`` stays ``[x]``).
    The rest is left as written: rich markup, escapes such as ``\\[server]`` included."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    return _STRONG.sub(_bold, _LITERAL.sub(_bold, text))


def _prepare_help(command: Any) -> None:
    """Pass the help of ``command``, of its options and arguments and of every subcommand through
    :func:`help_text` (typer builds them anew for each run, from the docstrings)."""
    if command.help:
        command.help = help_text(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = help_text(param.help)
    for sub in getattr(command, "commands", {}).values():
        _prepare_help(sub)


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
    hint = getattr(error, "param_hint", None)
    if isinstance(hint, str):  # raised by a command (bad_usage), naming what it judged
        return f"{hint}: {error.message}"
    if option is not None:
        if hasattr(error, "possibilities"):  # an unknown option; click suggests the close ones
            possibilities = getattr(error, "possibilities", None) or ()
            hint = f"; did you mean {', '.join(sorted(possibilities))}?" if possibilities else ""
            return f"{option}: no such option{hint}"
        # "Option '--id' requires an argument." and the like
        return f"{option}: {_lower_first(reason.removeprefix(f'Option {option!r} '))}"
    return _lower_first(reason)


def bad_usage(parameter: str, reason: str) -> NoReturn:
    """End the command on a usage error it found in its own command line: ``error: PARAMETER: REASON``,
    ``Try 'xgate CMD --help'.``, exit status 2, as click's own usage errors end (click gives the error the
    running command's context, which names the command of the hint). ``parameter`` as ``--help`` shows it:
    ``--region``, ``EVENT_NAME``, ``--origin / --no-server-source``."""
    raise typer.BadParameter(reason, param_hint=parameter)


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
    (parsed inside :meth:`invoke`), end in :func:`xgate.cli.output.usage_error`; every command's help is
    :func:`help_text`'s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _prepare_help(self)

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
