"""Fleet verify: one golden record checked on every node of a Ray cluster."""
