"""`parity.watch`: the golden record keeps guarding a model while it serves."""
