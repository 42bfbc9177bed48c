"""Datasets: layouts on disk → video records → decoded cache → clips."""
