"""The pipeline around the model: the stage list, the local runner, the summary and e-mail.

Standard library only, on purpose: `make pipeline`, `make report` and `make notify` run with
the system Python, so they work before `.venv` exists and report a failed setup stage too.
"""
