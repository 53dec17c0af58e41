"""The synthetic world: source-shaped tables plus a ground truth for judging and simulation."""
