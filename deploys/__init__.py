"""pyinfra deploys, one module per measure (see docs/measures.md); main.py runs them in order."""
