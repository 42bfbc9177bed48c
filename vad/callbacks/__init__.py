"""Optional Lightning extras and integrations (W&B uploads); never the evaluation itself."""
