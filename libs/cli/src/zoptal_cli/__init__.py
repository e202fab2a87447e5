"""``zoptal``: the Zoptal platform's command line, on the typed clients (``zoptal.clients``).

``python -m zoptal_cli`` runs the same command. docs/cli.md describes every command.
"""
