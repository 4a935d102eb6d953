"""Recommendations: candidate models (`models/`: popularity, trending, EASE, Spark ALS,
content similarity), a score-level ensemble, a session-aware ranker and the serving
recommender.

Like every model domain: `data` (what it reads, through the feature store's
`features.retrieval`), `model` (fit and predict), `evaluate` (its metrics), `steps`
(the training run's steps and the record it leaves), `train` (the steps in order),
`tracking` (MLflow logging, importing nothing back). Here also `ensemble`,
`ranker`, `diversity` and `serving`.
"""
