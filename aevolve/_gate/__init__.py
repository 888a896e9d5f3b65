"""Layer 5: the gate. Cases, assertions, runners in guarded trees, the results cache, the decision and the report."""
