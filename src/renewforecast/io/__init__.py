"""Reading and writing organisation data: Salesforce exports and canonical folders."""
