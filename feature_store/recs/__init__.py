"""Recommendations: MovieLens loaders, the Microsoft Recommenders evaluation protocol,
candidate models (popularity, EASE / item co-occurrence, Spark implicit ALS, content
similarity) and a score-level ensemble of them."""
