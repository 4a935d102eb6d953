"""Churn prediction: will an account cancel within 30 days of a snapshot date?

Like every model domain: `data` (what it reads, through the feature store's
`features.retrieval`), `model` (fit and predict), `evaluate` (its metrics), `steps`
(the training run's steps and the record it leaves), `train` (the steps in order),
`tracking` (MLflow logging, importing nothing back). Here also `scoring` (per-account
risk with bands and reasons) and `rescoring` (the evaluator the promotion gate uses).
"""
