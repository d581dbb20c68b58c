"""What turns results into pages: headlines, formatting, charts, the notebook templates and the run that publishes them.

Layer: reports. May import every layer to its left (foundation, ``io``,
``ledger``, ``models``, ``analyses``); only the CLI and the notebooks import it.
"""
