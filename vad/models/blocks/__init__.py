"""Building blocks shared by several methods: one place for each."""
