"""Delivery: the router fans events out, each sink's durable outbox and worker deliver them."""
