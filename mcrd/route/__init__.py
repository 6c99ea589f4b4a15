"""Route types shared by the policy and the RIB (below both: neither imports the other for them)."""
