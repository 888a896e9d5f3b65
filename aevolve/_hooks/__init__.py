"""Layer 7: git hooks. Installing the shims, the client checks and the server's pre-receive."""
