"""Reading and writing organisation data: Salesforce exports and canonical folders, into a validated Book.

Layer: io. May import the foundation modules (``book``, ``schemas``,
``exceptions``, ``atomic``, ``currency``, ``dates``) and nothing else of
renewforecast: reading knows nothing of valuation, models or reports.
"""
