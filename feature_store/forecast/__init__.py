"""Regional popularity forecasts (region x title daily views, 14 days ahead), the CDN
pre-positioning plan built from them, and the new-title audience model.

Like every model domain: `data` (what it reads, through the feature store's
`features.retrieval`), `model` (fit and predict), `evaluate` (its metrics), `steps`
(the training run's steps and the record it leaves), `train` (the steps in order),
`tracking` (MLflow logging, importing nothing back). Here also `features`
(the forecast rows), `cdn` and `audience`.
"""
