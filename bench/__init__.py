"""End-to-end benchmarks of the hall server: a real server process, real HTTP and Socket.IO.

Run with ``.venv/bin/python -m bench`` (``make bench``); ``--help`` lists the options and
docs/benchmarks.md records the results and how to read them.
"""
