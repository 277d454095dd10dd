"""`orch tui`: a live terminal view of the project's runs, tasks and logs.

The only package that imports Textual. It reads the store through `Store`'s query methods
and acts only through the library functions the CLI uses (`cancel_run`, `run_in_subprocess`).
Start it with `make_app(home).run()` (see `orchlite.tui.app`).
"""
