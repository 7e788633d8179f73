"""A throw-away local world for tests, the demo and the benchmark: redis-server, anvil, the
product test double, and applications written exactly as the web app writes them."""
