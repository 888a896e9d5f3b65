"""Layer 1: git access.

Objects, trees, refs by compare-and-swap, transactions, notes, the lock; nothing here knows what an agent is.
"""
