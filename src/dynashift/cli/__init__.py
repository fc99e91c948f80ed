"""The `dynashift` command line: thin adapters over the engine (parse, call, format)."""
