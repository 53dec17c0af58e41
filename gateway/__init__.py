"""A/B experiment gateway for a news-feed recommender."""

__version__ = "0.1.0"
