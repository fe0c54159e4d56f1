"""`make bench`: the figures of DESIGN.md §12, each as a ratio to a reference measured in the same run."""
