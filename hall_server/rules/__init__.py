"""The hall's queue rules: plain Python, no Flask, Socket.IO, database or serial imports.

- ``states``: the ticket and window state machines.
- ``numbering``: service days and ticket numbers.
- ``routing``: which ticket a window calls next.
- ``estimate``: the wait shown on tickets.
- ``identity``: keyed hashes, masks and ages from ID numbers.
"""
