"""Reading runs and turning them into measurements: time/energy/bytes to a target, seed
aggregation with bootstrap intervals. Used by the figure and suite scripts."""
