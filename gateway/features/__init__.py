"""The shared feature store: offline build, in-memory online lookup, one definition per feature."""
