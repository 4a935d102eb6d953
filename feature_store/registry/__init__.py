"""The model registry's promotion workflow: aliases, gates kept as data, an audit trail.

- :mod:`~feature_store.registry.policy`: the promotion policy (``mlflow/registry.yaml``),
  loaded and validated;
- :mod:`~feature_store.registry.identity`: the identity of the data a version was evaluated
  on (the ``evaluation.data`` tag the training runs set);
- :mod:`~feature_store.registry.promotion`: the gate (a decision with every check),
  promotion and rollback by alias;
- :mod:`~feature_store.registry.evaluators`: re-scoring a champion on a candidate's
  evaluation data, for the models that can;
- :mod:`~feature_store.registry.audit`: the append-only Delta table of alias changes;
- :mod:`~feature_store.registry.listing`: versions, aliases and key metrics as a table.

Importing this package is cheap (the training runs import ``identity`` from it).
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
