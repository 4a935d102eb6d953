"""Churn prediction: will an account cancel within 30 days of a snapshot date?

`dataset` builds labelled snapshots with the point-in-time API, `model` fits gradient-
boosted trees (and a logistic-regression baseline) with class weights, `metrics` judges
them, `scoring` turns a model into per-account risk with bands and reasons, `platform`
runs the whole training and `tracking` puts it in MLflow as the registered model `churn`.
"""
