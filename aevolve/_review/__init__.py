"""Layer 7: reading history. The semantic diff, the pull-request review, log and rollback."""
