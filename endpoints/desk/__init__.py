"""The desk (/desk): agents and specialists take offers and work cases."""
