"""Layer 4: proposing.

Evolvers, the LLM client, the policy every proposal passes, the rationale, and the commit on an evolution branch.
"""
