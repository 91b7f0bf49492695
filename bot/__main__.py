"""``python -m bot`` and the ``paperbot`` command: the command line, Ctrl-C at any moment ending
it without a traceback.

The command line takes a second or more to import on a busy machine, before ``bot.cli.main``
can catch anything; so it is imported here, where a Ctrl-C meanwhile ends it as one later does
(exit code 130). A SIGTERM meanwhile keeps its default action, as it does until a command's own
handling takes over (``bot.stopping``): the process ends by the signal, printing nothing, which a
shell shows as exit code 143 and a service manager counts as a clean stop (an exit code of 143
it would count as a failure).
"""

import sys


def main() -> None:
    """Import the command line and run it."""
    try:
        from bot.cli import main as run
    except KeyboardInterrupt:
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
