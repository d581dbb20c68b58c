"""The subscription ledger: what each row is worth on a day, MRR and its movements, schedules, recognised revenue.

Layer: ledger. May import the foundation modules (``book``, ``schemas``,
``exceptions``, ``atomic``, ``currency``, ``dates``). Never imports io,
models, analyses or reports.
"""
