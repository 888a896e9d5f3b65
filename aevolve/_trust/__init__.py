"""Layer 3: what may change and who says so.

The exam and the evolvable layers, secrets, SSH signatures, approvals, and the one verifier of a move of main.
"""
