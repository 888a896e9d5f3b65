"""Layer 6: promotion. Moving main to a gated commit atomically, rebasing when main moved, updating checkouts."""
