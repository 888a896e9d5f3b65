"""Formats of other tools, brought in and written back: Letta Agent Files (`letta`),
promptfoo suites as gate cases (`promptfoo`, `promptfoo_files`, `jsregex`).

Layer 7: it builds on the state (`_state`) and reads nothing above the gate.
"""
