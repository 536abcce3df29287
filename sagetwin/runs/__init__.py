"""Past training runs: a record per run (what ran, how it ended, its loss curve) written by the
training hooks, and ``sagetwin runs`` to list, show, plot and prune them and their run folders."""
