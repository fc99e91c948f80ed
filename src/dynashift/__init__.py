"""dynashift: move a live DynamoDB table without downtime, with proof that nothing was lost."""

__version__ = "0.1.0"
