"""Layer 2: the agent's state.

Files of a commit, the index or a folder; their formats, schemas and validation; observations; the JSONL merge;
adopting a folder.
"""
