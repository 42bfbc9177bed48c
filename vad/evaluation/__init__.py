"""The one evaluation path every method shares: scores → frame labels → AUC/EER → files."""
