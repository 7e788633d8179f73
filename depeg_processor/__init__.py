"""depeg-backend-processor: relays gasless depeg insurance applications to the chain."""

__version__ = "1.0.0"
